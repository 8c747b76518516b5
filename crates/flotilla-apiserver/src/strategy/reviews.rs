//! The create-only reviews of `authentication.k8s.io` (TokenReview, SelfSubjectReview) and
//! `authorization.k8s.io` (the access reviews): nothing is stored, so they have only a type
//! (schema and protobuf message) here; their handlers are in `crate::auth::reviews`.

use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};

use super::{Aggregate, Strategy};

/// The six reviews; none takes patches.
pub(crate) const STRATEGIES: &[Strategy] = &[
    // kubectl 1.27 asks `auth whoami` of v1beta1.
    Strategy::described::<authn::SelfSubjectReview>()
        .also_untyped("v1beta1")
        .patch(None),
    Strategy::described::<authn::TokenReview>().patch(None),
    // Namespace admins may ask what others can do in their namespace.
    Strategy::described::<authz::LocalSubjectAccessReview>()
        .aggregate(Aggregate::Admin(&["create"]))
        .patch(None),
    Strategy::described::<authz::SelfSubjectAccessReview>().patch(None),
    Strategy::described::<authz::SelfSubjectRulesReview>().patch(None),
    Strategy::described::<authz::SubjectAccessReview>().patch(None),
];
