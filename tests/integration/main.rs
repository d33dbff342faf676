//! Integration tests: the real binary against temporary config repos, stating the exact
//! outcome a person would see (exit code, the message, and what happened to out/).

mod autostop;
mod build;
mod cache;
mod common;
mod completions;
mod cost;
mod defaults;
mod delivery;
mod diff;
mod example_repo;
mod idle;
mod init;
mod list;
mod ml;
mod new;
mod platform;
mod policy;
mod quota;
mod rules;
mod schema;
mod scripts;
mod secrets;
mod show;
mod snapshots;
mod ssh_config;
mod stdio;
mod template;
mod validate;
mod version;
mod wording;
