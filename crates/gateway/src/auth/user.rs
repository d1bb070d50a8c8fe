//! Readers of an organization's log: Owners/Admins with a JWT from the platform's identity
//! provider (HS256 shared secret, or RS256/ES256 keys from a JWKS file or URL), and
//! Enterprise read-only API tokens (`at_<id>_<secret>`).
//!
//! The organization a reader may see always comes from the verified credential, never from
//! the request: a path naming another organization answers 404 (its existence is not
//! revealed), a Member answers 403, an invalid or expired credential 401.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use audit_settings::{PlansConfig, SettingsView};
use axum::http::HeaderMap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;

use crate::config::UserAuthConfig;
use crate::error::ApiError;

pub const API_TOKEN_PREFIX: &str = "at";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

/// Who is reading, and which organization they may read.
#[derive(Debug, Clone)]
pub struct Reader {
    pub org_id: String,
    /// User id (`sub`) or API token id.
    pub subject: String,
    pub kind: ReaderKind,
}

#[derive(Debug, Clone)]
pub enum ReaderKind {
    User {
        role: Role,
        email: Option<String>,
        name: Option<String>,
    },
    ApiToken {
        name: String,
    },
}

impl Reader {
    /// Checks that this reader may read `org_id`'s log.
    pub fn authorize(&self, org_id: &str) -> Result<(), ApiError> {
        if self.org_id != org_id {
            return Err(ApiError::NotFound(format!(
                "organization `{org_id}` not found"
            )));
        }
        if let ReaderKind::User {
            role: Role::Member, ..
        } = self.kind
        {
            return Err(ApiError::Forbidden(
                "audit logs are available to Owners and Admins only".into(),
            ));
        }
        Ok(())
    }

    /// A user (not an API token) who is Owner or Admin of `org_id`.
    pub fn authorize_admin_user(&self, org_id: &str) -> Result<(), ApiError> {
        self.authorize(org_id)?;
        if matches!(self.kind, ReaderKind::ApiToken { .. }) {
            return Err(ApiError::Forbidden(
                "API tokens are read-only; sign in as an Owner or Admin".into(),
            ));
        }
        Ok(())
    }

    /// The event `actor` describing this reader, for the meta events it causes.
    pub fn actor(&self) -> audit_core::Actor {
        match &self.kind {
            ReaderKind::User { email, name, .. } => audit_core::Actor {
                kind: audit_core::ActorType::User,
                id: self.subject.clone(),
                name: name.clone(),
                email: email.clone(),
            },
            ReaderKind::ApiToken { name } => audit_core::Actor {
                kind: audit_core::ActorType::ApiKey,
                id: self.subject.clone(),
                name: Some(name.clone()),
                email: None,
            },
        }
    }
}

struct Keys {
    hs256: Option<DecodingKey>,
    /// Public keys by `kid` (keys without a kid are stored under "").
    jwks: HashMap<String, (Algorithm, DecodingKey)>,
}

/// Verifies reader credentials.
pub struct UserAuth {
    config: UserAuthConfig,
    keys: RwLock<Arc<Keys>>,
}

impl std::fmt::Debug for UserAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAuth").finish_non_exhaustive()
    }
}

impl UserAuth {
    pub fn new(config: &UserAuthConfig) -> anyhow::Result<Self> {
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|secret| DecodingKey::from_secret(secret.expose().as_bytes()));
        let jwks = match &config.jwks_file {
            Some(path) => parse_jwks(&std::fs::read_to_string(path)?)?,
            None => HashMap::new(),
        };
        Ok(Self {
            config: config.clone(),
            keys: RwLock::new(Arc::new(Keys { hs256, jwks })),
        })
    }

    /// Fetches the JWKS URL (if configured) and replaces the public keys.
    pub async fn refresh_jwks(&self, client: &reqwest::Client) -> anyhow::Result<()> {
        let Some(url) = &self.config.jwks_url else {
            return Ok(());
        };
        let text = client
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let jwks = parse_jwks(&text)?;
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        *keys = Arc::new(Keys {
            hs256: keys.hs256.clone(),
            jwks,
        });
        Ok(())
    }

    pub fn jwks_refresh_secs(&self) -> Option<u64> {
        self.config
            .jwks_url
            .as_ref()
            .map(|_| self.config.jwks_refresh_secs.max(10))
    }

    /// Authenticates a reader from the request's bearer credential.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        view: &SettingsView,
        plans: &PlansConfig,
    ) -> Result<Reader, ApiError> {
        let token = super::bearer_token(headers)
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        if token.starts_with("at_") {
            return authenticate_api_token(token, view, plans);
        }
        self.authenticate_jwt(token)
    }

    fn authenticate_jwt(&self, token: &str) -> Result<Reader, ApiError> {
        let invalid = |reason: &str| ApiError::Unauthorized(format!("invalid token: {reason}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let key = match header.alg {
            Algorithm::HS256 => keys
                .hs256
                .as_ref()
                .ok_or_else(|| invalid("HS256 is not accepted"))?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header.kid.clone().unwrap_or_default();
                match keys.jwks.get(&kid) {
                    Some((algorithm, key)) if *algorithm == header.alg => key,
                    _ => return Err(invalid("unknown signing key")),
                }
            }
            _ => return Err(invalid("algorithm not accepted")),
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        // Issuer and audience are required trust settings (`UserAuthConfig::validate`); only
        // `local_development` leaves them unset.
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Value>(token, key, &validation).map_err(|error| {
            use jsonwebtoken::errors::ErrorKind;
            match error.kind() {
                ErrorKind::ExpiredSignature => invalid("expired"),
                ErrorKind::ImmatureSignature => invalid("not yet valid"),
                ErrorKind::InvalidSignature => invalid("bad signature"),
                ErrorKind::InvalidIssuer => invalid("wrong issuer"),
                ErrorKind::InvalidAudience => invalid("wrong audience"),
                ErrorKind::MissingRequiredClaim(claim) => {
                    invalid(&format!("missing claim `{claim}`"))
                }
                _ => invalid("rejected"),
            }
        })?;
        let claims = data.claims;
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let org_id = text(&self.config.org_claim)
            .ok_or_else(|| invalid(&format!("missing claim `{}`", self.config.org_claim)))?;
        let role = match text(&self.config.role_claim).as_deref() {
            Some("owner") => Role::Owner,
            Some("admin") => Role::Admin,
            Some("member") => Role::Member,
            _ => {
                return Err(invalid(&format!(
                    "claim `{}` must be owner, admin or member",
                    self.config.role_claim
                )));
            }
        };
        Ok(Reader {
            org_id,
            subject: text("sub").unwrap_or_default(),
            kind: ReaderKind::User {
                role,
                email: text("email"),
                name: text("name"),
            },
        })
    }
}

fn authenticate_api_token(
    token: &str,
    view: &SettingsView,
    plans: &PlansConfig,
) -> Result<Reader, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid or revoked API token".into());
    let (token_id, secret) =
        super::split_credential(token, API_TOKEN_PREFIX).ok_or_else(invalid)?;
    let record = view.api_tokens.get(token_id).ok_or_else(invalid)?;
    if record.revoked_at.is_some() || !audit_settings::secret_matches(secret, &record.secret_sha256)
    {
        return Err(invalid());
    }
    let plan = view
        .org(&record.org_id)
        .map(|org| org.plan)
        .unwrap_or_default();
    if !plans.policy(plan).streaming {
        return Err(ApiError::Forbidden(format!(
            "API access requires the Enterprise plan; organization `{}` is on `{}`",
            record.org_id,
            plan.as_str()
        )));
    }
    Ok(Reader {
        org_id: record.org_id.clone(),
        subject: record.token_id.clone(),
        kind: ReaderKind::ApiToken {
            name: record.name.clone(),
        },
    })
}

fn parse_jwks(text: &str) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
    let set: JwkSet = serde_json::from_str(text)?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let algorithm = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk)?;
        keys.insert(
            jwk.common.key_id.clone().unwrap_or_default(),
            (algorithm, key),
        );
    }
    Ok(keys)
}

/// What a minted token says.
#[derive(Debug, Clone, Default)]
pub struct MintClaims<'a> {
    pub subject: &'a str,
    pub org_id: &'a str,
    pub role: &'a str,
    pub ttl_secs: i64,
    pub email: Option<&'a str>,
    /// `iss`, when the gateway is configured with one.
    pub issuer: Option<&'a str>,
    /// `aud`, when the gateway is configured with one.
    pub audience: Option<&'a str>,
}

/// Mints an HS256 token (the `gateway mint-token` dev command and tests).
pub fn mint_hs256(secret: &str, claims: &MintClaims<'_>) -> anyhow::Result<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut body = serde_json::json!({
        "sub": claims.subject, "org_id": claims.org_id, "role": claims.role,
        "iat": now, "exp": now + claims.ttl_secs,
    });
    for (name, value) in [
        ("email", claims.email),
        ("iss", claims.issuer),
        ("aud", claims.audience),
    ] {
        if let Some(value) = value {
            body[name] = Value::from(value);
        }
    }
    let claims = body;
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use audit_runtime::Secret;

    const SECRET: &str = "dev-secret-0123456789abcdef-0123456789";
    const ISSUER: &str = "https://id.solarius.example";
    const AUDIENCE: &str = "audit-logs";

    fn auth() -> UserAuth {
        let config = UserAuthConfig {
            hs256_secret: Some(Secret::new(SECRET.to_string())),
            issuer: Some(ISSUER.into()),
            audience: Some(AUDIENCE.into()),
            ..UserAuthConfig::default()
        };
        UserAuth::new(&config).expect("auth")
    }

    fn mint(secret: &str, org_id: &str, role: &str, ttl_secs: i64) -> String {
        mint_hs256(
            secret,
            &MintClaims {
                subject: "u1",
                org_id,
                role,
                ttl_secs,
                issuer: Some(ISSUER),
                audience: Some(AUDIENCE),
                ..MintClaims::default()
            },
        )
        .expect("token")
    }

    fn headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        headers
    }

    fn reader(token: &str) -> Result<Reader, ApiError> {
        auth().authenticate(
            &headers(token),
            &SettingsView::default(),
            &PlansConfig::default(),
        )
    }

    #[test]
    fn owner_admin_member_and_other_org() {
        for role in ["owner", "admin"] {
            let token = mint(SECRET, "org_a", role, 60);
            let reader = reader(&token).expect("reader");
            assert!(reader.authorize("org_a").is_ok());
            assert!(matches!(
                reader.authorize("org_b"),
                Err(ApiError::NotFound(_))
            ));
        }
        let member = mint(SECRET, "org_a", "member", 60);
        assert!(matches!(
            reader(&member).expect("reader").authorize("org_a"),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_401() {
        let expired = mint(SECRET, "org_a", "owner", -3600);
        assert!(
            matches!(reader(&expired), Err(ApiError::Unauthorized(m)) if m.contains("expired"))
        );
        let forged = mint(
            "other-secret-0123456789abcdef-0123456789",
            "org_a",
            "owner",
            60,
        );
        assert!(
            matches!(reader(&forged), Err(ApiError::Unauthorized(m)) if m.contains("signature"))
        );
        assert!(matches!(
            reader("not.a.jwt"),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            reader("at_000000000000_xxxxxxxxxxxxxxxxxxxx"),
            Err(ApiError::Unauthorized(_))
        ));
        let no_role = mint(SECRET, "org_a", "superuser", 60);
        assert!(matches!(reader(&no_role), Err(ApiError::Unauthorized(_))));
    }

    #[test]
    fn another_applications_tokens_are_refused() {
        // Same identity provider key, right org and role claims, wrong iss or aud (or none).
        let base = MintClaims {
            subject: "u1",
            org_id: "org_a",
            role: "owner",
            ttl_secs: 60,
            issuer: Some(ISSUER),
            audience: Some(AUDIENCE),
            ..MintClaims::default()
        };
        for (claims, reason) in [
            (
                MintClaims {
                    audience: Some("billing-portal"),
                    ..base.clone()
                },
                "audience",
            ),
            (
                MintClaims {
                    audience: None,
                    ..base.clone()
                },
                "aud",
            ),
            (
                MintClaims {
                    issuer: Some("https://evil.example"),
                    ..base.clone()
                },
                "issuer",
            ),
            (
                MintClaims {
                    issuer: None,
                    ..base.clone()
                },
                "iss",
            ),
        ] {
            let token = mint_hs256(SECRET, &claims).expect("token");
            assert!(
                matches!(reader(&token), Err(ApiError::Unauthorized(m)) if m.contains(reason)),
                "{reason}"
            );
        }
        assert!(reader(&mint_hs256(SECRET, &base).expect("token")).is_ok());
    }
}
