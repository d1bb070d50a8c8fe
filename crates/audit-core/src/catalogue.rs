//! The category → action catalogue. It is data (`config/catalogue.toml`): adding an action
//! needs no code change, only a restart of the services that load it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ocsf::OcsfMapping;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    /// Version of the catalogue file format.
    version: u32,
    category: Vec<CategoryDef>,
}

/// One category and the actions it contains.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Beta categories are accepted like the others; the flag is shown to users.
    #[serde(default)]
    pub beta: bool,
    /// Internal categories are written by the platform itself (meta events about the log).
    #[serde(default)]
    pub internal: bool,
    pub actions: Vec<ActionDef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The OCSF class and activity of the action (see [`crate::ocsf`]); absent means the
    /// default for actions without one, API Activity / Other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsf: Option<OcsfMapping>,
}

/// The loaded catalogue with a reverse index from action to category.
#[derive(Debug, Clone)]
pub struct Catalogue {
    categories: BTreeMap<String, CategoryDef>,
    /// Every action by name, with its category: one lookup per event on the hot paths (the
    /// forwarder's OCSF mapping, validation).
    actions: HashMap<String, (String, ActionDef)>,
}

impl Catalogue {
    pub fn from_toml(text: &str) -> Result<Self> {
        let file: CatalogueFile =
            toml::from_str(text).map_err(|error| Error::CatalogueInvalid(error.to_string()))?;
        if file.version != 1 {
            return Err(Error::CatalogueInvalid(format!(
                "version: unsupported catalogue version {}",
                file.version
            )));
        }
        let mut categories = BTreeMap::new();
        let mut actions = HashMap::new();
        for category in file.category {
            for action in &category.actions {
                if let Some(mapping) = &action.ocsf {
                    mapping.check().map_err(|reason| {
                        Error::CatalogueInvalid(format!("action `{}`: ocsf: {reason}", action.name))
                    })?;
                }
                if let Some((previous, _)) =
                    actions.insert(action.name.clone(), (category.name.clone(), action.clone()))
                {
                    return Err(Error::CatalogueInvalid(format!(
                        "action `{}` is listed in both `{previous}` and `{}`",
                        action.name, category.name
                    )));
                }
            }
            if categories.contains_key(&category.name) {
                return Err(Error::CatalogueInvalid(format!(
                    "category `{}` is listed twice",
                    category.name
                )));
            }
            categories.insert(category.name.clone(), category);
        }
        Ok(Self {
            categories,
            actions,
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::CatalogueRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// The catalogue shipped in the repository.
    pub fn builtin() -> Self {
        // The file is part of the build and covered by tests; failing here is a build defect.
        Self::from_toml(crate::DEFAULT_CATALOGUE_TOML).unwrap_or_else(|error| {
            panic!("config/catalogue.toml shipped with this build is invalid: {error}")
        })
    }

    pub fn category(&self, name: &str) -> Option<&CategoryDef> {
        self.categories.get(name)
    }

    pub fn categories(&self) -> impl Iterator<Item = &CategoryDef> {
        self.categories.values()
    }

    /// The definition of an action, if it exists.
    pub fn action(&self, name: &str) -> Option<&ActionDef> {
        self.actions.get(name).map(|(_, action)| action)
    }

    /// The category an action belongs to, if the action exists.
    pub fn category_of(&self, action: &str) -> Option<&str> {
        self.actions
            .get(action)
            .map(|(category, _)| category.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn builtin_catalogue_has_every_action_of_the_design() {
        let catalogue = Catalogue::builtin();
        let expected = [
            ("authentication", "user.login.succeeded"),
            ("authentication", "user.login.failed"),
            ("authentication", "user.mfa.enrolled"),
            ("authentication", "user.mfa.removed"),
            ("user_management", "member.invite.sent"),
            ("user_management", "member.role.changed"),
            ("user_management", "member.removed"),
            ("user_management", "org.ownership.transferred"),
            ("billing", "billing.payment_method.updated"),
            ("billing", "billing.payment.failed"),
            ("billing", "billing.invoice.generated"),
            ("service", "resource.created"),
            ("service", "resource.deleted"),
            ("service", "resource.config.edited"),
            ("security", "user.password.changed"),
            ("security", "token.refreshed"),
            ("security", "api_key.generated"),
            ("data_access", "data.export.requested"),
            ("data_access", "data.download.requested"),
            ("data_access", "asset.permission.changed"),
            ("audit_log", "audit_log.viewed"),
            ("audit_log", "audit_log.exported"),
            ("audit_log", "audit_log.retention.changed"),
            ("audit_log", "audit_log.destination.created"),
        ];
        for (category, action) in expected {
            assert_eq!(catalogue.category_of(action), Some(category), "{action}");
        }
        assert!(catalogue.category("data_access").is_some_and(|c| c.beta));
        assert!(catalogue.category("audit_log").is_some_and(|c| c.internal));
    }

    #[test]
    fn every_builtin_action_names_its_ocsf_class() {
        let catalogue = Catalogue::builtin();
        for category in catalogue.categories() {
            for action in &category.actions {
                assert!(action.ocsf.is_some(), "{} has no ocsf mapping", action.name);
            }
        }
        let login = catalogue.action("user.login.failed").expect("exists");
        assert_eq!(
            login.ocsf,
            Some(OcsfMapping {
                class_uid: 3002,
                activity_id: 1
            })
        );
        assert!(catalogue.action("user.teleported").is_none());
    }

    #[test]
    fn unknown_ocsf_classes_and_activities_are_refused() {
        for (mapping, expected) in [
            ("{ class_uid = 4001, activity_id = 1 }", "class_uid 4001"),
            ("{ class_uid = 3005, activity_id = 3 }", "activity_id 3"),
            ("{ class_uid = 3005 }", "activity_id"),
        ] {
            let text = format!(
                "version = 1\n[[category]]\nname = 'a'\nactions = [{{ name = 'x.y', ocsf = {mapping} }}]\n"
            );
            let error = Catalogue::from_toml(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{mapping}: {error}");
        }
    }

    #[test]
    fn duplicate_actions_are_refused() {
        let text = r#"
            version = 1
            [[category]]
            name = "a"
            actions = [{ name = "x.y" }]
            [[category]]
            name = "b"
            actions = [{ name = "x.y" }]
        "#;
        let error = Catalogue::from_toml(text).unwrap_err().to_string();
        assert!(error.contains("`x.y`"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = "version = 1\ncolour = 'red'\n[[category]]\nname='a'\nactions=[]\n";
        let error = Catalogue::from_toml(text).unwrap_err().to_string();
        assert!(error.contains("colour"), "{error}");
    }
}
