// Audit Logs page — keyboard shortcuts (the page's shortcuts dialog lists them): j/k and the
// arrows move the selection, Home/End, Enter opens, Esc closes, / searches, l toggles live,
// u the time zone, ? shows the list. None fires while typing in a field.

import { closeDetail, openDetail } from './detail.js';
import { $, isTypingTarget } from './dom.js';
import { setLive } from './live.js';
import { moveSelection, select } from './results.js';
import { state } from './state.js';
import { setTimeZone } from './time.js';

export function onKeyDown(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($('log').hidden || $('shortcuts').open) return;
  const target = event.target;
  if (event.key === 'Escape') {
    if (isTypingTarget(target) && target.closest('#filters')) {
      target.blur();
      return;
    }
    if (state.detailId) {
      event.preventDefault();
      closeDetail();
    }
    return;
  }
  if (isTypingTarget(target)) return;
  const onControl = target instanceof HTMLElement && target.closest('button, a, summary, [role="switch"]');
  const inGridOrBody = target === document.body || target instanceof HTMLTableRowElement || target === $('main') || target === $('detail');
  switch (event.key) {
    case '/':
      event.preventDefault();
      $('f-q').focus();
      $('f-q').select();
      break;
    case 'j':
    case 'J':
      event.preventDefault();
      moveSelection(1);
      break;
    case 'k':
    case 'K':
      event.preventDefault();
      moveSelection(-1);
      break;
    case 'ArrowDown':
    case 'ArrowUp':
      if (!inGridOrBody) return;
      event.preventDefault();
      moveSelection(event.key === 'ArrowDown' ? 1 : -1);
      break;
    case 'Home':
    case 'End':
      if (!(target instanceof HTMLTableRowElement) || !state.events.length) return;
      event.preventDefault();
      select(event.key === 'Home' ? state.events[0].id : state.events[state.events.length - 1].id);
      break;
    case 'Enter':
      if (onControl || !state.selectedId) return;
      if (!inGridOrBody) return;
      event.preventDefault();
      openDetail(state.selectedId);
      break;
    case 'l':
    case 'L':
      if (onControl && target.id === 'live-toggle') return;
      setLive(!state.live);
      break;
    case 'u':
    case 'U':
      setTimeZone(state.tz === 'utc' ? 'local' : 'utc');
      break;
    case '?':
      event.preventDefault();
      $('shortcuts').showModal();
      break;
    default:
  }
}
