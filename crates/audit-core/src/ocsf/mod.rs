//! The event as an OCSF object (Open Cybersecurity Schema Framework, version [`OCSF_VERSION`]),
//! for destinations and exports in the `ocsf` format. The one mapping: the forwarder's sinks
//! and the gateway's export both call [`write_json`] (or [`to_json`]) on an [`EventView`] of
//! the event, which the forwarder reads straight from the event's JSON.
//!
//! **Which class.** Each catalogue action names its class and activity (`ocsf` in
//! `config/catalogue.toml`, checked at load against [`OcsfClass`]); an action without one, or
//! one the running catalogue does not know, is API Activity (6003) / Other (99) with the
//! action as `activity_name`.
//!
//! **Fields.** Every object has the base fields (`class_uid`, `category_uid`, `activity_id`,
//! `type_uid` = class × 100 + activity, their names, `time` = `occurred_at` in unix ms,
//! `severity_id` Informational, Low for a failure, `status_id` from the outcome) and
//! `metadata`: `uid` = the event id (1.4.0 has no `original_event_uid`), `tenant_uid` = the
//! organization, `event_code` = the action, `log_provider` = the producing service,
//! `logged_time` = `received_at`. The actor is `actor.user` (`actor.app_*` for a service),
//! `context.ip` is `src_endpoint.ip`, `user_agent` and `request_id` are `http_request`.
//! What has no OCSF home (category, provenance, free-text location, the targets not used by
//! the class, the event's metadata, an e-mail OCSF's pattern refuses) is kept in `unmapped`:
//! nothing of the event is lost. Per class:
//!
//! | class | subject | from |
//! |---|---|---|
//! | 3002 Authentication | `user`, `service` | the actor; the source (else the product) |
//! | 3001 Account Change | `user` | the first user/member/account target, else the actor |
//! | 3005 User Access Management | `user`, `privileges` | as 3001; metadata `role`/`new_role`/`privileges`, else the action |
//! | 3004 Entity Management | `entity` | the first target, else the organization |
//! | 6003 API Activity | `api.operation`, `resources` | the action; every target |

mod classes;
mod object;
mod view;
mod write;

use std::borrow::Cow;

pub use classes::{MappingError, OcsfClass, OcsfMapping};
pub use object::{
    Api, Endpoint, Entity, HttpRequest, Metadata, OcsfActor, OcsfEvent, Product, Resource, Service,
    TypeName, Unmapped, User,
};
pub use view::{ActorView, ContextView, EventView, MetadataView, TargetView};

use crate::catalogue::{ActionDef, Catalogue};
use crate::event::{ActorType, AuditEvent, Outcome};
use classes::OTHER;

/// The OCSF version every object claims (`metadata.version`) and is validated against.
pub const OCSF_VERSION: &str = "1.4.0";

/// `metadata.product.name`.
pub const PRODUCT_NAME: &str = "Solarius Audit Log";

/// `metadata.product.vendor_name`.
pub const VENDOR_NAME: &str = "Solarius";

/// The class and activity of `action` in `catalogue` ([`OcsfMapping::DEFAULT`] when it has none).
pub fn mapping_of(catalogue: &Catalogue, action: &str) -> (OcsfClass, u32) {
    class_of(catalogue.action(action))
}

fn class_of(definition: Option<&ActionDef>) -> (OcsfClass, u32) {
    let mapping = definition
        .and_then(|definition| definition.ocsf)
        .filter(|mapping| mapping.check().is_ok())
        .unwrap_or(OcsfMapping::DEFAULT);
    match OcsfClass::from_uid(mapping.class_uid) {
        Some(class) => (class, mapping.activity_id),
        None => (OcsfClass::ApiActivity, OTHER),
    }
}

/// The OCSF object of `event`, as compact JSON.
pub fn to_json(event: &AuditEvent, catalogue: &Catalogue) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_json(&EventView::from(event), catalogue, &mut out);
    out
}

/// Appends the OCSF object of `event`, as compact JSON, to `out`.
pub fn write_json(event: &EventView<'_>, catalogue: &Catalogue, out: &mut Vec<u8>) {
    write::event(&map(event, catalogue), out);
}

/// The OCSF object of `event` (borrowing from it).
pub fn map<'a>(event: &'a EventView<'a>, catalogue: &'a Catalogue) -> OcsfEvent<'a> {
    let definition = catalogue.action(&event.action);
    let (class, activity_id) = class_of(definition);
    let activity_name = match class.activity_name(activity_id) {
        Some(name) if activity_id != OTHER => name,
        // Other: OCSF wants the source's own name of the activity.
        _ => &event.action,
    };
    let (category_uid, category_name) = class.category();
    let failed = event.outcome == Outcome::Failure;
    let message = definition
        .map(|definition| definition.description.as_str())
        .filter(|description| !description.is_empty())
        .unwrap_or(&event.action);
    let mut unmapped = Unmapped {
        category: &event.category,
        provenance: event.provenance.map(|p| p.as_str()),
        location: event.context.location.as_deref(),
        actor_email: None,
        targets: Vec::new(),
        metadata: event.metadata,
    };
    let actor_user = user_of_actor(event, &mut unmapped);
    let mut object = OcsfEvent {
        class_uid: class.uid(),
        class_name: class.name(),
        category_uid,
        category_name,
        activity_id,
        activity_name,
        type_uid: u64::from(class.uid()) * 100 + u64::from(activity_id),
        type_name: TypeName {
            class: class.name(),
            activity: class.activity_name(activity_id).unwrap_or("Other"),
        },
        time: event.occurred_at_ms,
        severity_id: if failed { 2 } else { 1 },
        severity: if failed { "Low" } else { "Informational" },
        status_id: if failed { 2 } else { 1 },
        status: if failed { "Failure" } else { "Success" },
        message,
        metadata: Metadata {
            version: OCSF_VERSION,
            product: Product {
                name: PRODUCT_NAME,
                vendor_name: VENDOR_NAME,
                version: env!("CARGO_PKG_VERSION"),
            },
            uid: &event.id,
            tenant_uid: &event.org_id,
            event_code: &event.action,
            log_provider: event.source.as_deref(),
            logged_time: event.received_at_ms,
        },
        actor: Some(actor_of(event, actor_user.clone())),
        src_endpoint: event.context.ip.as_deref().map(|ip| Endpoint {
            ip: Some(ip),
            ..Endpoint::default()
        }),
        http_request: http_request_of(event),
        user: None,
        service: None,
        privileges: None,
        entity: None,
        api: None,
        resources: None,
        unmapped: Unmapped::default(),
    };
    let targets: Vec<&TargetView<'_>> = event.targets.iter().collect();
    match class {
        OcsfClass::Authentication => {
            object.user = Some(actor_user);
            object.service = Some(Service {
                name: event.source.as_deref().unwrap_or(PRODUCT_NAME),
            });
            unmapped.targets = targets;
        }
        OcsfClass::AccountChange | OcsfClass::UserAccessManagement => {
            let subject = targets.iter().position(|t| is_user_kind(&t.kind));
            object.user = Some(match subject {
                Some(index) => user_of_target(targets[index]),
                None => actor_user,
            });
            if class == OcsfClass::UserAccessManagement {
                object.privileges = Some(privileges_of(event));
            }
            unmapped.targets = without(targets, subject);
        }
        OcsfClass::EntityManagement => {
            object.entity = Some(match targets.first() {
                Some(target) => Entity {
                    uid: &target.id,
                    name: target.name.as_deref(),
                    kind: &target.kind,
                },
                None => Entity {
                    uid: &event.org_id,
                    name: None,
                    kind: "organization",
                },
            });
            unmapped.targets = without(targets, Some(0));
        }
        OcsfClass::ApiActivity => {
            object.api = Some(Api {
                operation: &event.action,
                service: event.source.as_deref().map(|name| Service { name }),
            });
            if !targets.is_empty() {
                object.resources = Some(targets.iter().map(|t| resource_of(t)).collect());
            }
            // Required by the class: the source service when the event has no address.
            if object.src_endpoint.is_none() {
                object.src_endpoint = Some(Endpoint {
                    svc_name: Some(event.source.as_deref().unwrap_or(PRODUCT_NAME)),
                    ..Endpoint::default()
                });
            }
        }
    }
    object.unmapped = unmapped;
    object
}

fn is_user_kind(kind: &str) -> bool {
    matches!(kind, "user" | "member" | "account")
}

fn without<'a>(targets: Vec<&'a TargetView<'a>>, used: Option<usize>) -> Vec<&'a TargetView<'a>> {
    targets
        .into_iter()
        .enumerate()
        .filter(|(index, _)| Some(*index) != used)
        .map(|(_, target)| target)
        .collect()
}

/// The user behind the actor (services are users of type Other here; [`actor_of`] also
/// names them as the app). An e-mail OCSF's pattern refuses goes to `unmapped`.
fn user_of_actor<'a>(event: &'a EventView<'a>, unmapped: &mut Unmapped<'a>) -> User<'a> {
    let actor = &event.actor;
    let email = actor.email.as_deref();
    let email_addr = email.filter(|email| is_ocsf_email(email));
    if email.is_some() && email_addr.is_none() {
        unmapped.actor_email = email;
    }
    let (type_id, kind) = match actor.kind {
        ActorType::User => (1, "User"),
        ActorType::System => (3, "System"),
        ActorType::ApiKey => (99, "API Key"),
        ActorType::Service => (99, "Service"),
    };
    User {
        uid: &actor.id,
        name: actor.name.as_deref(),
        email_addr,
        type_id: Some(type_id),
        kind: Some(kind),
    }
}

fn user_of_target<'a>(target: &'a TargetView<'a>) -> User<'a> {
    User {
        uid: &target.id,
        name: target.name.as_deref(),
        email_addr: None,
        type_id: None,
        kind: None,
    }
}

fn actor_of<'a>(event: &'a EventView<'a>, user: User<'a>) -> OcsfActor<'a> {
    let actor = &event.actor;
    let is_app = actor.kind == ActorType::Service;
    OcsfActor {
        app_uid: is_app.then_some(&*actor.id),
        app_name: is_app.then(|| actor.name.as_deref().unwrap_or(&actor.id)),
        user: Some(user),
    }
}

fn http_request_of<'a>(event: &'a EventView<'a>) -> Option<HttpRequest<'a>> {
    let context = &event.context;
    if context.user_agent.is_none() && context.request_id.is_none() {
        return None;
    }
    Some(HttpRequest {
        user_agent: context.user_agent.as_deref(),
        uid: context.request_id.as_deref(),
    })
}

fn resource_of<'a>(target: &'a TargetView<'a>) -> Resource<'a> {
    Resource {
        uid: &target.id,
        name: target.name.as_deref(),
        kind: &target.kind,
    }
}

/// The privileges granted or revoked: the event's `role`, `new_role` or `privileges`
/// metadata (comma separated), else the action itself.
fn privileges_of<'a>(event: &'a EventView<'a>) -> Vec<Cow<'a, str>> {
    for key in ["role", "new_role", "privileges"] {
        let Some(text) = event.metadata.text(key) else {
            continue;
        };
        let privileges: Vec<Cow<'a, str>> = match text {
            Cow::Borrowed(text) => split_privileges(text).map(Cow::Borrowed).collect(),
            Cow::Owned(text) => split_privileges(&text)
                .map(|p| Cow::Owned(p.to_owned()))
                .collect(),
        };
        if !privileges.is_empty() {
            return privileges;
        }
    }
    vec![Cow::Borrowed(&*event.action)]
}

fn split_privileges(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|p| !p.is_empty())
}

/// Whether OCSF's `email_t` pattern accepts `text`:
/// `^[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$`.
pub fn is_ocsf_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    // Every character the pattern allows is ASCII: bytes are compared, not chars (a string
    // search per character showed in the forwarder's profile). `+-/` in the pattern's class
    // is a range: `+ , - . /`.
    let local_ok = !local.is_empty()
        && local.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
                        ..=b'/' | b'=' | b'?' | b'^' | b'_' | b'`' | b'{' | b'|' | b'}' | b'~'
                )
        });
    let Some((label, rest)) = domain.split_once('.') else {
        return false;
    };
    let label_ok = !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let rest_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    local_ok && label_ok && rest_ok
}

#[cfg(test)]
mod tests;
