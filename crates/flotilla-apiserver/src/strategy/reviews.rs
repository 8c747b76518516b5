//! The create-only reviews of `authentication.k8s.io` (TokenReview, SelfSubjectReview) and
//! `authorization.k8s.io` (the access reviews): nothing is stored, so they have only a type
//! (schema and protobuf message) here; their handlers are in `crate::auth::reviews`.

use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};

use super::{Aggregate, Strategy};

/// The six reviews.
pub(crate) const STRATEGIES: &[Strategy] = &[
    Strategy::described::<authn::SelfSubjectReview>(),
    Strategy::described::<authn::TokenReview>(),
    // Namespace admins may ask what others can do in their namespace.
    Strategy::described::<authz::LocalSubjectAccessReview>()
        .aggregate(Aggregate::Admin(&["create"])),
    Strategy::described::<authz::SelfSubjectAccessReview>(),
    Strategy::described::<authz::SelfSubjectRulesReview>(),
    Strategy::described::<authz::SubjectAccessReview>(),
];
