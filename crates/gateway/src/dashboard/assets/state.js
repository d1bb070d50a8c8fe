// Audit Logs page — the constants (organization from the path, storage keys, page sizes,
// ranges, filter names) and the one mutable `state` object the modules share.

export const ORG = decodeURIComponent(location.pathname.split('/')[2] || '');
export const ORG_PATH = `/v1/orgs/${encodeURIComponent(ORG)}`;
export const TOKEN_KEY = 'audit-logs.token';
export const TZ_KEY = 'audit-logs.tz';

export const PAGE_SIZE = 100;
/** Live mode polls the first page this often (start to start), so a new event shows in < 2 s. */
export const LIVE_INTERVAL_MS = 1200;
export const LIVE_PAGE_SIZE = 50;
export const RANGES = {
  '1h': 3600e3,
  '24h': 24 * 3600e3,
  '7d': 7 * 24 * 3600e3,
  '30d': 30 * 24 * 3600e3,
  '90d': 90 * 24 * 3600e3,
};
export const RANGE_WORDS = {
  '1h': 'in the last hour',
  '24h': 'in the last 24 hours',
  '7d': 'in the last 7 days',
  '30d': 'in the last 30 days',
  '90d': 'in the last 90 days',
};
export const DEFAULT_RANGE = '7d';
/** Single-value text filters, named as in the API and in this page's URL. */
export const TEXT_FILTERS = ['action', 'actor', 'target_type', 'target_id', 'ip', 'q'];
export const ACTION_PATTERN = /^[a-z0-9_.]+\*?$/;
export const state = {
  token: null,
  claims: null,
  tz: localStorage.getItem(TZ_KEY) === 'utc' ? 'utc' : 'local',
  filters: emptyFilters(),
  live: false,
  /** Loaded events, newest first, and their ids. */
  events: [],
  byId: new Map(),
  nextCursor: null,
  hasMore: false,
  /** The query string of the first page, reused for the next pages (same `since`). */
  pageQuery: null,
  selectedId: null,
  detailId: null,
  detailEvent: null,
  /** Bumped on every fresh load: answers of older loads and polls are dropped. */
  generation: 0,
  loading: false,
  loadingMore: false,
  controller: null,
  liveTimer: null,
  liveError: null,
  unseenNew: 0,
  catalogue: { categories: [], actions: new Map() },
  expiryTimer: null,
  retryTimer: null,
};

/** The filters of the default view: the default range, nothing else. */
export function emptyFilters() {
  return {
    range: DEFAULT_RANGE,
    since: '',
    until: '',
    category: [],
    action: '',
    actor: '',
    target_type: '',
    target_id: '',
    outcome: '',
    ip: '',
    q: '',
  };
}
