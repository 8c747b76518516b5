//! The authenticated (or impersonated) identity behind a request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who is making a request, as Kubernetes' `user.Info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name, e.g. `alice` or `system:serviceaccount:ns:name`.
    pub username: String,
    /// A unique id (ServiceAccounts), empty when the authenticator gives none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// Groups, `system:authenticated` included once authenticated.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra attributes (impersonation `Impersonate-Extra-*`, token claims).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// A user with no uid and no extra attributes.
    pub fn new(username: impl Into<String>, groups: Vec<String>) -> Self {
        UserInfo {
            username: username.into(),
            groups,
            ..Default::default()
        }
    }

    /// Whether `group` is one of the user's groups.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The group whose members may do anything.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Added to every authenticated identity.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
