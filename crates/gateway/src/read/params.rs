//! Query parameters of the read API. Strict: an unknown, repeated or malformed parameter is a
//! 400 that names it, never a 500 and never silently ignored.

use std::net::IpAddr;

use audit_core::Catalogue;
use audit_store::query::{EventFilter, ExportFormat};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// Longest free-text query.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest value of any other parameter.
const MAX_VALUE_CHARS: usize = 1024;
/// Most values of a list parameter (categories, actions).
const MAX_LIST_ITEMS: usize = 50;

/// Parameters every filtered endpoint accepts.
pub const FILTER_PARAMS: &[&str] = &[
    "since",
    "until",
    "category",
    "action",
    "actor",
    "target_type",
    "target_id",
    "outcome",
    "ip",
    "q",
];

/// The filters of the list and export routes, as the OpenAPI document describes them
/// (parsed by [`parse`]; a test keeps the names equal to [`FILTER_PARAMS`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the derive
pub struct FilterQuery {
    /// Occurred at or after this time (RFC 3339 with a zone).
    #[param(format = DateTime, max_length = 1024)]
    since: Option<String>,
    /// Occurred before this time (exclusive; after `since`).
    #[param(format = DateTime, max_length = 1024)]
    until: Option<String>,
    /// Catalogue categories, comma-separated; may be repeated.
    #[param(max_length = 1024, pattern = "^[a-z][a-z0-9_]*(,[a-z][a-z0-9_]*)*$")]
    category: Option<String>,
    /// Actions (`user.login.failed`) or prefixes (`user.*`), comma-separated; may be repeated.
    #[param(max_length = 1024, pattern = "^[a-z0-9_.]+[*]?(,[a-z0-9_.]+[*]?)*$")]
    action: Option<String>,
    /// Actor id, name or email.
    #[param(max_length = 1024, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    actor: Option<String>,
    /// A target's type.
    #[param(max_length = 1024, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    target_type: Option<String>,
    /// A target's id.
    #[param(max_length = 1024, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    target_id: Option<String>,
    /// `success` or `failure`.
    #[param(pattern = "^(success|failure)$")]
    outcome: Option<String>,
    /// The client IP (IPv4 or IPv6).
    #[param(max_length = 1024)]
    ip: Option<String>,
    /// Free text over actor, targets and metadata.
    #[param(max_length = 200, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    q: Option<String>,
}

/// Paging of the list route.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the derive
pub struct PageQuery {
    /// Events per page (default `read.default_limit`, 100; at most `read.max_limit`, 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (signed; bound to the organization).
    #[param(max_length = 1024)]
    cursor: Option<String>,
}

/// Position and size of a feed poll.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the derive
pub struct FeedQuery {
    /// Events per poll (default and at most `read.max_limit`, 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous poll; absent: from the oldest event.
    #[param(max_length = 1024)]
    after: Option<String>,
}

/// The export's format.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by the derive
pub struct ExportQuery {
    /// `csv` (default), `json` (one array), `ndjson` (also `jsonl`) or `ocsf` (NDJSON of
    /// OCSF 1.4.0 objects).
    #[param(pattern = "^(csv|json|ndjson|jsonl|ocsf)$")]
    format: Option<String>,
}

/// The parsed parameters of a read request.
#[derive(Debug, Default)]
pub struct ReadParams {
    pub filter: EventFilter,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub after: Option<String>,
    pub format: Option<ExportFormat>,
    /// `json` export as one array instead of NDJSON.
    pub json_array: bool,
    /// `ocsf` export: NDJSON of OCSF objects instead of the stored events.
    pub ocsf: bool,
    /// The raw filter pairs, for the audit trail of the read.
    pub described: Vec<(String, String)>,
}

fn bad(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(param, message)
}

fn parse_time(param: &str, value: &str) -> ApiResult<OffsetDateTime> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| {
        bad(
            param,
            "must be an RFC 3339 time with a zone, e.g. 2026-11-26T00:00:00Z",
        )
    })
}

fn list_items(param: &str, value: &str) -> ApiResult<Vec<String>> {
    let items: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect();
    if items.is_empty() {
        return Err(bad(param, "must not be empty"));
    }
    if items.len() > MAX_LIST_ITEMS {
        return Err(bad(param, format!("at most {MAX_LIST_ITEMS} values")));
    }
    Ok(items)
}

/// Parses `query` allowing `FILTER_PARAMS` plus `extra`.
pub fn parse(
    query: Option<&str>,
    extra: &[&str],
    catalogue: &Catalogue,
    max_limit: u32,
) -> ApiResult<ReadParams> {
    let mut params = ReadParams::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let name = name.into_owned();
        let value = value.into_owned();
        let known = FILTER_PARAMS.contains(&name.as_str()) || extra.contains(&name.as_str());
        if !known {
            let shown: String = name.chars().take(64).collect();
            return Err(bad(&shown, format!("unknown parameter `{shown}`")));
        }
        let repeatable = matches!(name.as_str(), "category" | "action");
        if !repeatable && seen.contains(&name) {
            return Err(bad(&name, "given more than once"));
        }
        seen.push(name.clone());
        let limit = if name == "q" {
            MAX_TEXT_CHARS
        } else {
            MAX_VALUE_CHARS
        };
        if value.chars().count() > limit {
            return Err(bad(&name, format!("longer than {limit} characters")));
        }
        if value.chars().any(char::is_control) {
            return Err(bad(&name, "must not contain control characters"));
        }
        if FILTER_PARAMS.contains(&name.as_str()) && !value.is_empty() {
            params.described.push((name.clone(), value.clone()));
        }
        apply(&mut params, &name, &value, catalogue, max_limit)?;
    }
    if let (Some(since), Some(until)) = (params.filter.since, params.filter.until)
        && since >= until
    {
        return Err(bad("until", "must be after `since`"));
    }
    Ok(params)
}

fn apply(
    params: &mut ReadParams,
    name: &str,
    value: &str,
    catalogue: &Catalogue,
    max_limit: u32,
) -> ApiResult<()> {
    let filter = &mut params.filter;
    let text = || (!value.trim().is_empty()).then(|| value.trim().to_string());
    match name {
        "since" => filter.since = Some(parse_time(name, value)?),
        "until" => filter.until = Some(parse_time(name, value)?),
        "category" => {
            for category in list_items(name, value)? {
                if catalogue.category(&category).is_none() {
                    return Err(bad(
                        name,
                        format!(
                            "unknown category `{}`",
                            category.chars().take(64).collect::<String>()
                        ),
                    ));
                }
                filter.categories.push(category);
            }
        }
        "action" => {
            for action in list_items(name, value)? {
                let (stem, prefix) = match action.strip_suffix('*') {
                    Some(stem) => (stem.to_string(), true),
                    None => (action.clone(), false),
                };
                let well_formed = !stem.is_empty()
                    && stem.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                    });
                if !well_formed {
                    return Err(bad(
                        name,
                        "must be an action like `user.login.failed` or a prefix like `user.*`",
                    ));
                }
                if prefix {
                    filter.action_prefixes.push(stem);
                } else {
                    filter.actions.push(stem);
                }
            }
        }
        "actor" => filter.actor = text(),
        "target_type" => filter.target_type = text(),
        "target_id" => filter.target_id = text(),
        "outcome" => match value {
            "success" | "failure" => filter.outcome = Some(value.to_string()),
            _ => return Err(bad(name, "must be `success` or `failure`")),
        },
        "ip" => {
            let ip: IpAddr = value
                .trim()
                .parse()
                .map_err(|_| bad(name, "must be an IPv4 or IPv6 address"))?;
            filter.ip = Some(ip.to_string());
        }
        "q" => filter.text = text(),
        "limit" => {
            let limit: u32 = value
                .parse()
                .map_err(|_| bad(name, format!("must be a number from 1 to {max_limit}")))?;
            if !(1..=max_limit).contains(&limit) {
                return Err(bad(name, format!("must be from 1 to {max_limit}")));
            }
            params.limit = Some(limit);
        }
        "cursor" => params.cursor = Some(value.to_string()),
        "after" => params.after = Some(value.to_string()),
        "format" => match value {
            "csv" => params.format = Some(ExportFormat::Csv),
            "ndjson" | "jsonl" => params.format = Some(ExportFormat::Ndjson),
            "json" => {
                params.format = Some(ExportFormat::Ndjson);
                params.json_array = true;
            }
            "ocsf" => {
                params.format = Some(ExportFormat::Ndjson);
                params.ocsf = true;
            }
            _ => return Err(bad(name, "must be `csv`, `json`, `ndjson` or `ocsf`")),
        },
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parse_ok(query: &str) -> ReadParams {
        parse(
            Some(query),
            &["limit", "cursor"],
            &Catalogue::builtin(),
            1000,
        )
        .expect("valid")
    }

    fn parse_err(query: &str) -> String {
        match parse(
            Some(query),
            &["limit", "cursor"],
            &Catalogue::builtin(),
            1000,
        ) {
            Err(ApiError::BadRequest { param, message }) => format!("{param}: {message}"),
            other => panic!("expected a 400 for {query}: {other:?}"),
        }
    }

    #[test]
    fn filters_parse() {
        let params = parse_ok(
            "since=2026-11-01T00:00:00Z&until=2026-11-02T00:00:00%2B01:00&category=billing,security&action=user.*&action=token.refreshed&outcome=failure&ip=203.0.113.9&q=Ada&limit=50",
        );
        assert_eq!(params.filter.categories, ["billing", "security"]);
        assert_eq!(params.filter.action_prefixes, ["user."]);
        assert_eq!(params.filter.actions, ["token.refreshed"]);
        assert_eq!(params.limit, Some(50));
        assert_eq!(params.filter.text.as_deref(), Some("Ada"));
    }

    #[test]
    fn hostile_or_wrong_parameters_are_400_naming_them() {
        assert!(parse_err("colour=red").starts_with("colour:"));
        assert!(parse_err("since=yesterday").starts_with("since:"));
        assert!(
            parse_err("since=2026-11-01T00:00:00").starts_with("since:"),
            "a zone is required"
        );
        assert!(
            parse_err("since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z")
                .starts_with("until:")
        );
        assert!(parse_err("category=weather").starts_with("category:"));
        assert!(parse_err("action=x'%20OR%201=1").starts_with("action:"));
        assert!(parse_err("action=*").starts_with("action:"));
        assert!(parse_err("outcome=maybe").starts_with("outcome:"));
        assert!(parse_err("ip=999.1.1.1").starts_with("ip:"));
        assert!(parse_err("limit=0").starts_with("limit:"));
        assert!(parse_err("limit=1001").starts_with("limit:"));
        assert!(parse_err("limit=ten").starts_with("limit:"));
        assert!(parse_err("actor=a&actor=b").starts_with("actor:"));
        assert!(parse_err(&format!("q={}", "x".repeat(201))).starts_with("q:"));
        assert!(parse_err("q=%00").starts_with("q:"));
    }

    #[test]
    fn the_documented_filters_are_the_parsed_ones() {
        let documented: Vec<String> = FilterQuery::into_params(|| None)
            .into_iter()
            .map(|parameter| parameter.name)
            .collect();
        assert_eq!(documented, FILTER_PARAMS);
    }

    #[test]
    fn sql_looking_text_is_just_a_value() {
        let params =
            parse_ok("actor=%27%3B%20DROP%20TABLE%20events%3B%20--&q=%25%27%20OR%20%271%27%3D%271");
        assert_eq!(
            params.filter.actor.as_deref(),
            Some("'; DROP TABLE events; --")
        );
    }
}
