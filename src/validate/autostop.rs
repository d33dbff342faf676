//! Rules of `[idle]`, `[schedule]` and `[owners]`: what [`crate::autostop`] refuses, as findings.

use jiff::civil::Time;

use super::Finding;
use crate::autostop::{self, Refused};

/// A [`Refused`] value as a finding at its key.
pub(super) fn finding(refused: Refused) -> Finding {
    Finding::error(refused.message).help(refused.help)
}

pub(super) fn after(value: &str) -> Result<(), Finding> {
    autostop::after_seconds(value).map(|_| ()).map_err(finding)
}

pub(super) fn timezone(value: &str) -> Result<(), Finding> {
    autostop::timezone(value).map(|_| ()).map_err(finding)
}

/// Working hours end on the day they begin: a night shift across midnight is two schedules'
/// worth of rules, which nobody has asked for yet.
pub(super) fn stop_after_start(start: Time, stop: Time) -> Result<(), Finding> {
    if stop > start {
        return Ok(());
    }
    Err(Finding::error(format!("working hours would end ({}) before they begin ({})", hhmm(stop), hhmm(start)))
        .label("not after `start`")
        .help("`stop` is later the same day than `start`, e.g. `start = \"08:00\"` and `stop = \"19:00\"`"))
}

fn hhmm(time: Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// `[owners] user_prefix`: what an authenticator puts before a name, never spaces or a name.
pub(super) fn user_prefix(prefix: &str) -> Result<(), Finding> {
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) || prefix.contains('@') {
        return Err(Finding::error(format!("`{prefix}` is not a user name prefix")).help(
            "use what your cluster's authenticator puts before the email, e.g. `\"oidc:\"` (`--oidc-username-prefix`), or `\"\"` on GKE",
        ));
    }
    Ok(())
}
