//! Who may read what: members and roles of the organization, other organizations' tokens,
//! expired and forged tokens, the Enterprise-only API tokens and their revocation.

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, user_token};
use serde_json::{Value, json};

use crate::common::{Reader, patch_org};

#[tokio::test(flavor = "multi_thread")]
async fn who_may_read_what() {
    let ns = Namespace::new("read-authz");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    let reader = Reader::new(&gateway);
    patch_org(&client, "org_ent", json!({"plan": "enterprise"})).await;
    patch_org(&client, "org_team", json!({"plan": "team"})).await;
    let key = client.producer_key("svc", &["*"], None).await;
    for org in ["org_ent", "org_team"] {
        assert_eq!(
            client
                .post_events(&key, &event(org, "resource.created"))
                .await
                .0,
            202
        );
    }
    let list = "/v1/orgs/org_ent/events";

    for role in ["owner", "admin"] {
        let token = user_token("org_ent", role, "u_1", 600);
        assert_eq!(
            reader.get(Some(&token), list).await.0,
            200,
            "{role} of the organization"
        );
        let other = user_token("org_team", role, "u_2", 600);
        assert_eq!(
            reader.get(Some(&other), list).await.0,
            404,
            "{role} of another organization"
        );
        let expired = user_token("org_ent", role, "u_1", -600);
        let (status, body, headers) = reader.get(Some(&expired), list).await;
        assert_eq!(status, 401, "expired {role}: {body}");
        assert!(headers.contains_key("www-authenticate"));
    }
    let member = user_token("org_ent", "member", "u_3", 600);
    let (status, body, _) = reader.get(Some(&member), list).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Owners and Admins"));
    assert_eq!(
        reader
            .get(Some(&user_token("org_team", "member", "u_4", 600)), list)
            .await
            .0,
        404
    );
    assert_eq!(reader.get(None, list).await.0, 401);
    assert_eq!(reader.get(Some("garbage"), list).await.0, 401);
    let mut forged = user_token("org_ent", "owner", "u_1", 600);
    forged.push('x');
    assert_eq!(reader.get(Some(&forged), list).await.0, 401);
    // A producer key or an operator token is not a reader credential.
    assert_eq!(reader.get(Some(&key), list).await.0, 401);
    assert_eq!(
        reader.get(Some(audit_tests::OPERATOR_TOKEN), list).await.0,
        401
    );

    // API tokens: Enterprise only, created by Owners/Admins, shown once, read-only, revocable.
    let admin = user_token("org_ent", "admin", "u_admin", 600);
    let create = |org: &'static str, token: String| {
        let http = reader.http.clone();
        let url = reader.url.clone();
        async move {
            let response = http
                .post(format!("{url}/v1/orgs/{org}/api-tokens"))
                .bearer_auth(token)
                .json(&json!({"name": "siem-pull"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, created) = create("org_ent", admin.clone()).await;
    assert_eq!(status, 201, "{created}");
    let api_token = created["token"].as_str().unwrap().to_string();
    assert!(api_token.starts_with("at_"));
    assert_eq!(
        create("org_ent", member.clone()).await.0,
        403,
        "members cannot create tokens"
    );
    assert_eq!(
        create("org_team", user_token("org_team", "owner", "u_5", 600))
            .await
            .0,
        403,
        "not Enterprise"
    );
    assert_eq!(
        create("org_ent", api_token.clone()).await.0,
        403,
        "tokens are read-only"
    );
    let (status, listed) = reader.json(&admin, "/v1/orgs/org_ent/api-tokens").await;
    assert_eq!(status, 200);
    assert!(
        !listed
            .to_string()
            .contains(&api_token[api_token.len() - 20..]),
        "secrets are never listed"
    );

    assert_eq!(reader.get(Some(&api_token), list).await.0, 200);
    assert_eq!(
        reader
            .get(
                Some(&api_token),
                "/v1/orgs/org_ent/events/export?format=ndjson"
            )
            .await
            .0,
        200
    );
    assert_eq!(
        reader
            .get(Some(&api_token), "/v1/orgs/org_team/events")
            .await
            .0,
        404,
        "other organization"
    );
    // A downgrade suspends API access; revocation ends it.
    patch_org(&client, "org_ent", json!({"plan": "team"})).await;
    assert_eq!(
        reader.get(Some(&api_token), list).await.0,
        403,
        "non-Enterprise"
    );
    patch_org(&client, "org_ent", json!({"plan": "enterprise"})).await;
    assert_eq!(reader.get(Some(&api_token), list).await.0, 200);
    let token_id = created["token_id"].as_str().unwrap();
    let response = reader
        .http
        .delete(format!(
            "{}/v1/orgs/org_ent/api-tokens/{token_id}",
            reader.url
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(reader.get(Some(&api_token), list).await.0, 401, "revoked");
}
