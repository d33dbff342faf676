//! Integration tests: the real binary against temporary config repos, stating the exact
//! outcome a person would see (exit code, the message, and what happened to out/).

mod build;
mod cache;
mod common;
mod completions;
mod delivery;
mod diff;
mod example_repo;
mod helpers;
mod rules;
mod schema;
mod show;
mod snapshots;
mod template;
mod validate;
