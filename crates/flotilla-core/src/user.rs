//! The authenticated (or impersonated) identity behind a request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who is making a request, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(username: impl Into<String>, groups: Vec<String>) -> Self {
        UserInfo {
            username: username.into(),
            groups,
            ..Default::default()
        }
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The group whose members may do anything.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Added to every authenticated identity.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
