//! Wire types and pure logic shared by every Flotilla crate.
//!
//! Nothing here performs I/O: the kind table ([`kinds`]), resource identity ([`resource`]), the authenticated
//! user ([`user`]), Kubernetes `Status` errors ([`status`]), label and field selectors
//! ([`selector`]) and the patch engines ([`patch`]).
//!
//! | need | call |
//! |---|---|
//! | plural, scope, short names, storage version of a kind | [`kinds::find`], [`kinds::find_resource`], [`kinds::plural_of`] |
//! | `?labelSelector=`, `kubectl -l` | [`selector::LabelSelector::parse`] → [`selector::LabelSelector::matches_object`] |
//! | a `meta/v1 LabelSelector` / `map[string]string` selector | [`selector::LabelSelector::from_json`] / [`selector::LabelSelector::from_match_labels`] |
//! | `?fieldSelector=` | [`selector::FieldSelector::parse`], [`selector::FieldSelector::check_supported`] with [`selector::supported_field_labels`] |
//! | label key/value validation | [`selector::validate_label_key`], [`selector::validate_label_value`] |
//! | PATCH by Content-Type | [`patch::PatchType::from_content_type`] |
//! | merge / JSON / strategic patch | [`patch::merge_patch`], [`patch::json_patch`], [`patch::strategic_merge`] with [`patch::builtin_merge_keys`] (`None` → 415) |
//! | server-side apply | [`patch::server_side_apply_with`] (409 via [`patch::ApplyError::to_api_error`]) |
//! | managedFields for POST/PUT/PATCH | [`patch::update_managed_fields_with`], manager [`patch::default_field_manager`] |
//! | merge keys of a CRD | [`patch::MergeKeyTable::from_openapi_schema`] |
//! //!
//! Every engine error has a `to_api_error()` giving the Status kube-apiserver would return.

pub mod kinds;
pub mod patch;
pub mod resource;
pub mod selector;
pub mod status;
pub mod user;
