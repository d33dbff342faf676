//! The values of `[idle]` and `[schedule]`: idle windows, clock times, time zones, and the
//! cron schedule that starts a box at the beginning of its working hours.
//!
//! `validate` reports what these functions refuse, at the key that holds it; `resolve` turns
//! what they accept into the box the template renders; `diff` and `wake` describe it. The rules
//! live here once, so the three never disagree about what `"1h30m"` means.

use jiff::civil::Time;
use jiff::tz::TimeZone;

use crate::model::Weekday;

/// `[idle] after` that never stops a box.
pub(crate) const NEVER: &str = "never";

/// The shortest idle window: shorter ones stop a box between two cells of a notebook, or while
/// its owner reads an error message.
pub(crate) const MIN_AFTER_SECONDS: u64 = 10 * 60;

/// The longest: past a month, "idle" is not what stops the box.
pub(crate) const MAX_AFTER_SECONDS: u64 = 31 * 24 * 3600;

/// Working days when `[schedule]` lists none: Monday to Friday.
pub(crate) const WORKDAYS: [Weekday; 5] = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];

/// Why a value of `[idle]` or `[schedule]` is refused, and how to write it instead.
#[derive(Debug, PartialEq)]
pub(crate) struct Refused {
    pub message: String,
    pub help: String,
}

impl Refused {
    fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        Self { message: message.into(), help: help.into() }
    }
}

/// `"2h"`, `"90m"`, `"1h30m"`, `"1d"` → seconds; `"never"` → `None`.
pub(crate) fn after_seconds(value: &str) -> Result<Option<u64>, Refused> {
    if value == NEVER {
        return Ok(None);
    }
    let help = "write hours and minutes like `\"2h\"`, `\"90m\"` or `\"1h30m\"` (or `\"never\"`)";
    let mut seconds: u64 = 0;
    let mut digits = String::new();
    let mut last_unit = 0;
    for c in value.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let (rank, unit) = match c {
            'd' => (1, 86_400),
            'h' => (2, 3_600),
            'm' => (3, 60),
            _ => return Err(Refused::new(format!("`{value}` is not a duration: `{c}` is not a unit (d, h, m)"), help)),
        };
        if digits.is_empty() || rank <= last_unit {
            return Err(Refused::new(format!("`{value}` is not a duration"), help));
        }
        let amount: u64 = digits.parse().map_err(|_| Refused::new(format!("`{value}` is too long a duration"), help))?;
        seconds = seconds.saturating_add(amount.saturating_mul(unit));
        digits.clear();
        last_unit = rank;
    }
    if !digits.is_empty() || last_unit == 0 {
        let hint = if value.chars().all(|c| c.is_ascii_digit()) && !value.is_empty() {
            format!("a number needs a unit: `\"{value}m\"` or `\"{value}h\"`")
        } else {
            help.to_string()
        };
        return Err(Refused::new(format!("`{value}` is not a duration"), hint));
    }
    if seconds < MIN_AFTER_SECONDS {
        return Err(Refused::new(
            format!("`{value}` is too short: the box would stop between two commands"),
            "use at least `\"10m\"`; to stop a box now, set `state = \"stopped\"`",
        ));
    }
    if seconds > MAX_AFTER_SECONDS {
        return Err(Refused::new(format!("`{value}` is longer than a month"), "use `\"never\"` for a box that should not stop by itself"));
    }
    Ok(Some(seconds))
}

/// `"08:00"` → 08:00. Two digits each, 24-hour clock: what people read in a review.
pub(crate) fn clock(value: &str) -> Result<Time, Refused> {
    let refused = || {
        Refused::new(
            format!("`{value}` is not a time of day"),
            "write it as `\"HH:MM\"` on a 24-hour clock, e.g. `\"08:30\"` or `\"19:00\"`",
        )
    };
    let (hours, minutes) = value.split_once(':').ok_or_else(refused)?;
    if hours.len() != 2 || minutes.len() != 2 || !(hours.chars().chain(minutes.chars())).all(|c| c.is_ascii_digit()) {
        return Err(refused());
    }
    let (hours, minutes): (i8, i8) = (hours.parse().map_err(|_| refused())?, minutes.parse().map_err(|_| refused())?);
    Time::new(hours, minutes, 0, 0).map_err(|_| refused())
}

/// An IANA time zone name that every cluster's API server knows (the CronJob's `timeZone` is
/// looked up in its time zone database) and the box can load.
pub(crate) fn timezone(value: &str) -> Result<TimeZone, Refused> {
    if value.eq_ignore_ascii_case("local") {
        return Err(Refused::new(
            "`Local` is the time zone of whatever node runs the box",
            "name a zone like `\"Europe/Berlin\"` or `\"UTC\"`",
        ));
    }
    // jiff finds names whatever their case; Go's time.LoadLocation, which reads the CronJob's
    // timeZone in the API server, and Python's zoneinfo in the box do not.
    match TimeZone::get(value) {
        Ok(zone) if zone.iana_name() == Some(value) => Ok(zone),
        Ok(zone) => Err(Refused::new(
            format!("`{value}` is not a time zone"),
            format!("did you mean `\"{}\"`? (time zone names are case-sensitive)", zone.iana_name().unwrap_or(value)),
        )),
        Err(_) => Err(Refused::new(
            format!("`{value}` is not a time zone"),
            "use an IANA name like `\"Europe/Berlin\"`, `\"America/New_York\"` or `\"UTC\"` (as `timedatectl list-timezones` lists them)",
        )),
    }
}

/// The CronJob schedule that starts a box at `start` on `days`: `"0 8 * * 1-5"`. Minutes and
/// hours are the local time of the CronJob's `timeZone`.
pub(crate) fn start_cron(start: Time, days: &[Weekday]) -> String {
    let mut numbers: Vec<u8> = days.iter().copied().map(cron_day).collect();
    numbers.sort_unstable();
    numbers.dedup();
    format!("{} {} * * {}", start.minute(), start.hour(), cron_list(&numbers))
}

/// The day in a cron schedule: 0 is Sunday.
fn cron_day(day: Weekday) -> u8 {
    match day {
        Weekday::Sun => 0,
        Weekday::Mon => 1,
        Weekday::Tue => 2,
        Weekday::Wed => 3,
        Weekday::Thu => 4,
        Weekday::Fri => 5,
        Weekday::Sat => 6,
    }
}

/// `[1, 2, 3, 4, 5]` → `1-5`, `[0, 6]` → `0,6`: runs of three or more become ranges.
fn cron_list(numbers: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}-{}", numbers[i], numbers[j]));
        } else {
            parts.extend(numbers[i..=j].iter().map(u8::to_string));
        }
        i = j + 1;
    }
    parts.join(",")
}

/// `7200` → `2h`, `5400` → `1h30m`: how messages write a window.
pub(crate) fn human(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3_600, seconds % 3_600 / 60);
    let mut out = String::new();
    for (amount, unit) in [(days, "d"), (hours, "h"), (minutes, "m")] {
        if amount > 0 {
            out.push_str(&format!("{amount}{unit}"));
        }
    }
    if out.is_empty() { "0m".into() } else { out }
}

/// `mon-fri`, `mon,wed,fri`, `every day`: how messages write working days.
pub(crate) fn days_text(days: &[Weekday]) -> String {
    let mut sorted = days.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() == 7 {
        return "every day".into();
    }
    let contiguous = sorted.windows(2).all(|w| w[1] as u8 == w[0] as u8 + 1);
    match sorted.as_slice() {
        [first, .., last] if contiguous && sorted.len() >= 3 => format!("{first}-{last}"),
        _ => sorted.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_in_days_hours_and_minutes() {
        assert_eq!(after_seconds("2h"), Ok(Some(7200)));
        assert_eq!(after_seconds("90m"), Ok(Some(5400)));
        assert_eq!(after_seconds("1h30m"), Ok(Some(5400)));
        assert_eq!(after_seconds("1d"), Ok(Some(86_400)));
        assert_eq!(after_seconds("never"), Ok(None));
        for wrong in ["", "2", "h", "2 h", "2H", "30m1h", "2h2h", "1.5h", "-2h", "2s", "Never"] {
            assert!(after_seconds(wrong).is_err(), "{wrong:?} was accepted");
        }
        assert_eq!(after_seconds("120").unwrap_err().help, "a number needs a unit: `\"120m\"` or `\"120h\"`");
        assert!(after_seconds("9m").unwrap_err().message.contains("too short"));
        assert_eq!(after_seconds("10m"), Ok(Some(600)));
        assert!(after_seconds("32d").unwrap_err().message.contains("month"));
        assert!(after_seconds("99999999999999999999h").is_err());
    }

    #[test]
    fn times_of_day_on_a_24_hour_clock() {
        assert_eq!(clock("08:00").unwrap(), Time::new(8, 0, 0, 0).unwrap());
        assert_eq!(clock("23:59").unwrap(), Time::new(23, 59, 0, 0).unwrap());
        for wrong in ["8:00", "24:00", "08:60", "0800", "08:00:00", "8am", "", "+8:00", "08:0x"] {
            assert!(clock(wrong).is_err(), "{wrong:?} was accepted");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(timezone("Europe/Berlin").is_ok());
        assert!(timezone("UTC").is_ok());
        assert!(timezone("America/Argentina/Buenos_Aires").is_ok());
        assert_eq!(timezone("europe/berlin").unwrap_err().help, "did you mean `\"Europe/Berlin\"`? (time zone names are case-sensitive)");
        assert!(timezone("Mars/Olympus").is_err());
        assert!(timezone("Local").is_err());
        assert!(timezone("CEST").is_err(), "an abbreviation is not a zone");
    }

    #[test]
    fn the_start_of_working_hours_as_a_cron_schedule() {
        let eight = clock("08:30").unwrap();
        assert_eq!(start_cron(eight, &WORKDAYS), "30 8 * * 1-5");
        assert_eq!(start_cron(eight, &[Weekday::Sun, Weekday::Sat]), "30 8 * * 0,6");
        assert_eq!(start_cron(eight, &[Weekday::Mon, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sun]), "30 8 * * 0,1,3-5");
        assert_eq!(start_cron(clock("00:00").unwrap(), &[Weekday::Tue, Weekday::Tue]), "0 0 * * 2");
    }

    #[test]
    fn windows_and_days_as_people_read_them() {
        assert_eq!(human(7200), "2h");
        assert_eq!(human(5400), "1h30m");
        assert_eq!(human(90_000), "1d1h");
        assert_eq!(days_text(&WORKDAYS), "mon-fri");
        assert_eq!(days_text(&[Weekday::Fri, Weekday::Mon, Weekday::Wed]), "mon,wed,fri");
        assert_eq!(days_text(&[Weekday::Sat, Weekday::Sun]), "sat,sun");
    }
}
