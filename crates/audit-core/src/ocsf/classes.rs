//! The OCSF 1.4.0 classes the mapping fills, their categories and activities: what a
//! catalogue's `ocsf = { class_uid, activity_id }` is checked against.

use serde::{Deserialize, Serialize};

/// An action's class and activity, as written in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OcsfMapping {
    /// One of the classes of [`OcsfClass`], e.g. 3002 (Authentication).
    pub class_uid: u32,
    /// One of that class's activities, e.g. 1 (Logon); 99 is Other.
    pub activity_id: u32,
}

impl OcsfMapping {
    /// The class of actions without a mapping of their own: API Activity / Other.
    pub const DEFAULT: OcsfMapping = OcsfMapping {
        class_uid: 6003,
        activity_id: OTHER,
    };

    /// Whether the class is one this mapping fills and the activity one of its activities.
    pub fn check(&self) -> Result<(), MappingError> {
        let class = OcsfClass::from_uid(self.class_uid).ok_or(MappingError::UnknownClass {
            class_uid: self.class_uid,
        })?;
        if class.activity_name(self.activity_id).is_none() {
            return Err(MappingError::UnknownActivity {
                class,
                activity_id: self.activity_id,
            });
        }
        Ok(())
    }
}

/// A catalogue mapping this build cannot fill; the message lists what it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("class_uid {class_uid} is not supported; one of {}", known_classes())]
    UnknownClass { class_uid: u32 },
    #[error("activity_id {activity_id} is not an activity of {}; one of {}", .class.name(), known_activities(*.class))]
    UnknownActivity { class: OcsfClass, activity_id: u32 },
}

/// `3001 (Account Change), 3002 (Authentication), …`
fn known_classes() -> String {
    let known: Vec<String> = OcsfClass::ALL
        .iter()
        .map(|c| format!("{} ({})", c.uid(), c.name()))
        .collect();
    known.join(", ")
}

/// `0 (Unknown), 1 (Create), …`
fn known_activities(class: OcsfClass) -> String {
    let known: Vec<String> = class
        .activities()
        .iter()
        .map(|(id, name)| format!("{id} ({name})"))
        .collect();
    known.join(", ")
}

/// The activity id meaning "Other" in every class.
pub(crate) const OTHER: u32 = 99;

/// The OCSF classes the mapping fills (each needs its own subject fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcsfClass {
    AccountChange,
    Authentication,
    EntityManagement,
    UserAccessManagement,
    ApiActivity,
}

impl OcsfClass {
    pub const ALL: [OcsfClass; 5] = [
        OcsfClass::AccountChange,
        OcsfClass::Authentication,
        OcsfClass::EntityManagement,
        OcsfClass::UserAccessManagement,
        OcsfClass::ApiActivity,
    ];

    pub fn from_uid(uid: u32) -> Option<OcsfClass> {
        OcsfClass::ALL.into_iter().find(|class| class.uid() == uid)
    }

    pub fn uid(self) -> u32 {
        match self {
            OcsfClass::AccountChange => 3001,
            OcsfClass::Authentication => 3002,
            OcsfClass::EntityManagement => 3004,
            OcsfClass::UserAccessManagement => 3005,
            OcsfClass::ApiActivity => 6003,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OcsfClass::AccountChange => "Account Change",
            OcsfClass::Authentication => "Authentication",
            OcsfClass::EntityManagement => "Entity Management",
            OcsfClass::UserAccessManagement => "User Access Management",
            OcsfClass::ApiActivity => "API Activity",
        }
    }

    /// `category_uid` and its caption.
    pub fn category(self) -> (u32, &'static str) {
        match self {
            OcsfClass::ApiActivity => (6, "Application Activity"),
            _ => (3, "Identity & Access Management"),
        }
    }

    /// The class's activities in OCSF 1.4.0 (id, caption).
    pub fn activities(self) -> &'static [(u32, &'static str)] {
        match self {
            OcsfClass::AccountChange => &[
                (0, "Unknown"),
                (1, "Create"),
                (2, "Enable"),
                (3, "Password Change"),
                (4, "Password Reset"),
                (5, "Disable"),
                (6, "Delete"),
                (7, "Attach Policy"),
                (8, "Detach Policy"),
                (9, "Lock"),
                (10, "MFA Factor Enable"),
                (11, "MFA Factor Disable"),
                (12, "Unlock"),
                (OTHER, "Other"),
            ],
            OcsfClass::Authentication => &[
                (0, "Unknown"),
                (1, "Logon"),
                (2, "Logoff"),
                (3, "Authentication Ticket"),
                (4, "Service Ticket Request"),
                (5, "Service Ticket Renew"),
                (6, "Preauth"),
                (OTHER, "Other"),
            ],
            OcsfClass::EntityManagement => &[
                (0, "Unknown"),
                (1, "Create"),
                (2, "Read"),
                (3, "Update"),
                (4, "Delete"),
                (5, "Move"),
                (6, "Enroll"),
                (7, "Unenroll"),
                (8, "Enable"),
                (9, "Disable"),
                (10, "Activate"),
                (11, "Deactivate"),
                (12, "Suspend"),
                (13, "Resume"),
                (OTHER, "Other"),
            ],
            OcsfClass::UserAccessManagement => &[
                (0, "Unknown"),
                (1, "Assign Privileges"),
                (2, "Revoke Privileges"),
                (OTHER, "Other"),
            ],
            OcsfClass::ApiActivity => &[
                (0, "Unknown"),
                (1, "Create"),
                (2, "Read"),
                (3, "Update"),
                (4, "Delete"),
                (OTHER, "Other"),
            ],
        }
    }

    pub fn activity_name(self, activity_id: u32) -> Option<&'static str> {
        self.activities()
            .iter()
            .find(|(id, _)| *id == activity_id)
            .map(|(_, name)| *name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_classes_and_activities_list_the_known_ones() {
        let class = OcsfMapping {
            class_uid: 1,
            activity_id: 1,
        };
        assert_eq!(
            class.check().unwrap_err().to_string(),
            "class_uid 1 is not supported; one of 3001 (Account Change), 3002 (Authentication), \
             3004 (Entity Management), 3005 (User Access Management), 6003 (API Activity)"
        );
        let activity = OcsfMapping {
            class_uid: 6003,
            activity_id: 7,
        };
        assert_eq!(
            activity.check().unwrap_err().to_string(),
            "activity_id 7 is not an activity of API Activity; one of 0 (Unknown), 1 (Create), \
             2 (Read), 3 (Update), 4 (Delete), 99 (Other)"
        );
        assert_eq!(OcsfMapping::DEFAULT.check(), Ok(()));
    }
}
