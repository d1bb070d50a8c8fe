//! The OCSF object written as compact JSON by hand. The forwarder writes one object per event
//! it sends in the OCSF format, and serde_json's derived serializer spent most of the
//! mapping's time there (a call per field, every string escaped byte by byte); this writer
//! emits each key as a constant and copies a string whole when it holds nothing to escape.
//! The bytes are the same as `serde_json::to_vec` of the [`OcsfEvent`] (the unit tests hold
//! the two equal for every case they map, and for arbitrary strings).

use std::borrow::Cow;

use super::object::{OcsfActor, OcsfEvent, Resource, Service, Unmapped, User};
use super::view::{MetadataView, TargetView};

/// Appends `event` to `out` as compact JSON.
pub(super) fn event(event: &OcsfEvent<'_>, out: &mut Vec<u8>) {
    let mut object = Object::open(out);
    object.captioned(
        ("class_uid", event.class_uid),
        ("class_name", event.class_name),
    );
    object.captioned(
        ("category_uid", event.category_uid),
        ("category_name", event.category_name),
    );
    object.captioned(
        ("activity_id", event.activity_id),
        ("activity_name", event.activity_name),
    );
    object.int("type_uid", event.type_uid);
    object.key("type_name");
    // Catalogue names: never escaped, but checked like every other string.
    object.out.push(b'"');
    escaped(object.out, event.type_name.class);
    object.out.extend_from_slice(b": ");
    escaped(object.out, event.type_name.activity);
    object.out.push(b'"');
    object.int("time", event.time);
    object.captioned(
        ("severity_id", event.severity_id),
        ("severity", event.severity),
    );
    object.captioned(("status_id", event.status_id), ("status", event.status));
    object.str("message", event.message);
    object.object("metadata", |metadata| {
        let m = &event.metadata;
        metadata.str("version", m.version);
        metadata.object("product", |product| {
            product.str("name", m.product.name);
            product.str("vendor_name", m.product.vendor_name);
            product.str("version", m.product.version);
        });
        metadata.str("uid", m.uid);
        metadata.str("tenant_uid", m.tenant_uid);
        metadata.str("event_code", m.event_code);
        metadata.opt_str("log_provider", m.log_provider);
        if let Some(logged_time) = m.logged_time {
            metadata.int("logged_time", logged_time);
        }
    });
    if let Some(actor) = &event.actor {
        object.object("actor", |object| write_actor(object, actor));
    }
    if let Some(endpoint) = &event.src_endpoint {
        object.object("src_endpoint", |object| {
            object.opt_str("ip", endpoint.ip);
            object.opt_str("svc_name", endpoint.svc_name);
        });
    }
    if let Some(request) = &event.http_request {
        object.object("http_request", |object| {
            object.opt_str("user_agent", request.user_agent);
            object.opt_str("uid", request.uid);
        });
    }
    if let Some(user) = &event.user {
        object.object("user", |object| write_user(object, user));
    }
    if let Some(service) = &event.service {
        object.object("service", |object| write_service(object, service));
    }
    if let Some(privileges) = &event.privileges {
        object.key("privileges");
        array(object.out, privileges, |out, privilege: &Cow<'_, str>| {
            string(out, privilege)
        });
    }
    if let Some(entity) = &event.entity {
        object.object("entity", |object| {
            object.str("uid", entity.uid);
            object.opt_str("name", entity.name);
            object.str("type", entity.kind);
        });
    }
    if let Some(api) = &event.api {
        object.object("api", |object| {
            object.str("operation", api.operation);
            if let Some(service) = &api.service {
                object.object("service", |object| write_service(object, service));
            }
        });
    }
    if let Some(resources) = &event.resources {
        object.key("resources");
        array(object.out, resources, write_resource);
    }
    object.object("unmapped", |object| write_unmapped(object, &event.unmapped));
    object.close();
}

fn write_actor(object: &mut Object<'_>, actor: &OcsfActor<'_>) {
    if let Some(user) = &actor.user {
        object.object("user", |object| write_user(object, user));
    }
    object.opt_str("app_name", actor.app_name);
    object.opt_str("app_uid", actor.app_uid);
}

fn write_user(object: &mut Object<'_>, user: &User<'_>) {
    object.str("uid", user.uid);
    object.opt_str("name", user.name);
    object.opt_str("email_addr", user.email_addr);
    if let Some(type_id) = user.type_id {
        object.int("type_id", type_id);
    }
    object.opt_str("type", user.kind);
}

fn write_service(object: &mut Object<'_>, service: &Service<'_>) {
    object.str("name", service.name);
}

fn write_resource(out: &mut Vec<u8>, resource: &Resource<'_>) {
    let mut object = Object::open(out);
    object.str("uid", resource.uid);
    object.opt_str("name", resource.name);
    object.str("type", resource.kind);
    object.close();
}

fn write_target(out: &mut Vec<u8>, target: &&TargetView<'_>) {
    let mut object = Object::open(out);
    object.str("type", &target.kind);
    object.str("id", &target.id);
    object.opt_str("name", target.name.as_deref());
    object.close();
}

fn write_unmapped(object: &mut Object<'_>, unmapped: &Unmapped<'_>) {
    object.str("category", unmapped.category);
    object.opt_str("provenance", unmapped.provenance);
    object.opt_str("location", unmapped.location);
    object.opt_str("actor_email", unmapped.actor_email);
    if !unmapped.targets.is_empty() {
        object.key("targets");
        array(object.out, &unmapped.targets, write_target);
    }
    match unmapped.metadata {
        MetadataView::Empty => {}
        // The event's own object, as it is (the forwarder's case).
        MetadataView::Json(raw) => {
            object.key("metadata");
            object.out.extend_from_slice(raw.get().as_bytes());
        }
        // A parsed map (the export's case): serde's writer, which cannot fail into memory.
        MetadataView::Map(map) => {
            object.key("metadata");
            let _ = serde_json::to_writer(&mut *object.out, map);
        }
    }
}

/// A JSON object being written: its fields, comma separated.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// `"key":` (keys are this module's constants: nothing to escape). Inlined, as the
    /// writers that call it, so each key's copy is one of known length (a call per key showed
    /// in the forwarder's profile).
    #[inline(always)]
    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    #[inline(always)]
    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        string(self.out, value);
    }

    #[inline(always)]
    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(key, value);
        }
    }

    #[inline(always)]
    fn int(&mut self, key: &str, value: impl itoa::Integer) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// An OCSF enum attribute and its caption (`severity_id` and `severity`, …).
    #[inline(always)]
    fn captioned(
        &mut self,
        (id_key, id): (&str, impl itoa::Integer),
        (key, caption): (&str, &str),
    ) {
        self.int(id_key, id);
        self.str(key, caption);
    }

    fn object(&mut self, key: &str, fields: impl FnOnce(&mut Object<'_>)) {
        self.key(key);
        let mut inner = Object::open(self.out);
        fields(&mut inner);
        inner.close();
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

fn array<T>(out: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (index, value) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        item(out, value);
    }
    out.push(b']');
}

/// `text` as a JSON string.
#[inline(always)]
fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    escaped(out, text);
    out.push(b'"');
}

/// `text` escaped as serde_json escapes it: copied whole when it has nothing to escape (almost
/// always: ids, names, addresses), else serde_json's own escaping, so the bytes never differ.
fn escaped(out: &mut Vec<u8>, text: &str) {
    // A loop without early exit or branches, which the compiler vectorises.
    let special = text.as_bytes().iter().fold(false, |special, &b| {
        special | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !special {
        out.extend_from_slice(text.as_bytes());
    } else {
        let mut quoted = Vec::with_capacity(text.len() + 8);
        // Writing a string into memory cannot fail.
        let _ = serde_json::to_writer(&mut quoted, text);
        out.extend_from_slice(&quoted[1..quoted.len() - 1]);
    }
}
