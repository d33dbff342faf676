//! Kubernetes resource quantities (`500m`, `32Gi`, `1e3`), parsed exactly as the API server
//! does, so that `validate` rejects what Kubernetes would, and `check` can tell a volume that
//! grows from one that shrinks.

use std::cmp::Ordering;
use std::fmt;

/// A parsed quantity, in billionths of the unit so `500m` and `1.5Gi` compare exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Quantity {
    nanos: u128,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct QuantityError {
    pub message: String,
    /// A corrected spelling, when the mistake is recognisable (`32GB` → `32Gi`).
    pub suggestion: Option<String>,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

const NANOS: u128 = 1_000_000_000;

impl Quantity {
    pub(crate) const ZERO: Self = Self { nanos: 0 };

    pub(crate) fn parse(text: &str) -> Result<Self, QuantityError> {
        let number_end = text.char_indices().find(|(_, c)| !(c.is_ascii_digit() || *c == '.')).map_or(text.len(), |(i, _)| i);
        let (number, suffix) = text.split_at(number_end);
        if text.starts_with(['+', '-']) {
            return Err(error(
                format!("`{text}` must be a positive quantity without a sign"),
                Some(text.trim_start_matches(['+', '-']).to_string()),
            ));
        }
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') || number.ends_with('.') {
            return Err(error(format!("`{text}` is not a number followed by a unit"), None));
        }
        let scale_down = 10u128.pow(u32::try_from(fraction.len()).unwrap_or(u32::MAX).min(30));
        let digits: u128 = format!("{whole}{fraction}").parse().map_err(|_| error(format!("`{text}` is too large"), None))?;
        // An exponent Kubernetes reads (`1e20` is 100E) but this one cannot hold.
        if let Some(power) = suffix.strip_prefix(['e', 'E']).and_then(|p| p.parse::<i32>().ok()).filter(|p| !(-9..=18).contains(p)) {
            let why = if power > 0 { "is too large" } else { "is smaller than a billionth, the finest Kubernetes keeps" };
            return Err(error(format!("`{text}` {why}"), None));
        }
        let nanos = match multiplier(suffix) {
            Some(Multiplier::Times(m)) => digits.checked_mul(m).and_then(|v| v.checked_mul(NANOS)),
            Some(Multiplier::Nanos(n)) => digits.checked_mul(n),
            None => return Err(unknown_suffix(text, number, suffix)),
        }
        .ok_or_else(|| error(format!("`{text}` is too large"), None))?;
        Ok(Self { nanos: nanos / scale_down })
    }

    pub(crate) fn is_zero(self) -> bool {
        self.nanos == 0
    }

    /// The exact value in billionths of the unit, for arithmetic that must not round (prices).
    pub(crate) fn nanos(self) -> u128 {
        self.nanos
    }

    /// Whole units (bytes, for memory), rounded down.
    pub(crate) fn whole_units(self) -> u128 {
        self.nanos / NANOS
    }

    /// `count` whole units (GPUs, which are counted, not measured).
    pub(crate) fn units(count: u128) -> Self {
        Self { nanos: count.saturating_mul(NANOS) }
    }

    /// How much `self` is over `other` (zero when it is not).
    pub(crate) fn excess_over(self, other: Self) -> Self {
        Self { nanos: self.nanos.saturating_sub(other.nanos) }
    }

    /// As a decimal number of units, exactly, for counts and CPU: `24`, `4.5`, `0.25`.
    pub(crate) fn decimal(self) -> String {
        let (whole, fraction) = (self.nanos / NANOS, self.nanos % NANOS);
        if fraction == 0 {
            return whole.to_string();
        }
        let digits = format!("{fraction:09}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }

    /// As bytes, exactly, in the largest binary unit that divides them (`1600Gi`, `20481Gi`,
    /// `768Mi`), or in Gi with up to three decimals when that is exact (`1.5Gi`, `72.25Gi`: a box
    /// plus its 256Mi sidecar), as memory and volume sizes are written in this tool: a rounded
    /// figure could show a total that is over its quota as equal to it.
    pub(crate) fn binary(self) -> String {
        if !self.nanos.is_multiple_of(NANOS) {
            return self.decimal();
        }
        let bytes = self.nanos / NANOS;
        let gib = 1u128 << 30;
        if bytes > gib && !bytes.is_multiple_of(gib) && (bytes * 1000).is_multiple_of(gib) {
            let thousandths = bytes * 1000 / gib;
            let digits = format!("{:03}", thousandths % 1000);
            return format!("{}.{}Gi", thousandths / 1000, digits.trim_end_matches('0'));
        }
        for (unit, shift) in [("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
            let size = 1u128 << shift;
            if bytes >= size && bytes.is_multiple_of(size) {
                return format!("{}{unit}", bytes / size);
            }
        }
        bytes.to_string()
    }
}

impl Quantity {
    /// [`Quantity::binary`], followed by the amount in Gi (or Mi, under a Gi) to one decimal when
    /// the exact figure is in a smaller unit: `1094432Mi (about 1068.8Gi)`, so that a total can be
    /// read against a quota written in Gi. The exact figure stays first.
    pub(crate) fn binary_readable(self) -> String {
        let exact = self.binary();
        let bytes = self.nanos / NANOS;
        let (unit, size) = if bytes >= 1 << 30 { ("Gi", 1u128 << 30) } else { ("Mi", 1u128 << 20) };
        if bytes < size || exact.ends_with(unit) || exact.ends_with("Ti") || exact.ends_with("Pi") || exact.ends_with("Ei") {
            return exact;
        }
        // Tenths of the unit, rounded half up.
        let tenths = (bytes * 10 + size / 2) / size;
        format!("{exact} (about {}.{}{unit})", tenths / 10, tenths % 10)
    }
}

/// Sums saturate rather than wrap: no total of boxes comes near 2^128 billionths of a unit, and
/// a saturated one still compares as over any quota.
impl std::ops::Add for Quantity {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self { nanos: self.nanos.saturating_add(other.nanos) }
    }
}

impl std::iter::Sum for Quantity {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self { nanos: 0 }, |total, q| total + q)
    }
}

impl PartialOrd<u128> for Quantity {
    fn partial_cmp(&self, units: &u128) -> Option<Ordering> {
        Some(self.nanos.cmp(&units.saturating_mul(NANOS)))
    }
}

impl PartialEq<u128> for Quantity {
    fn eq(&self, units: &u128) -> bool {
        self.nanos == units.saturating_mul(NANOS)
    }
}

enum Multiplier {
    Times(u128),
    /// For sub-unit suffixes: how many billionths one counts.
    Nanos(u128),
}

fn multiplier(suffix: &str) -> Option<Multiplier> {
    use Multiplier::{Nanos, Times};
    Some(match suffix {
        "" => Times(1),
        "n" => Nanos(1),
        "u" => Nanos(1_000),
        "m" => Nanos(1_000_000),
        "k" => Times(1_000),
        "M" => Times(1_000_000),
        "G" => Times(1_000_000_000),
        "T" => Times(1_000_000_000_000),
        "P" => Times(1_000_000_000_000_000),
        "E" => Times(1_000_000_000_000_000_000),
        "Ki" => Times(1 << 10),
        "Mi" => Times(1 << 20),
        "Gi" => Times(1 << 30),
        "Ti" => Times(1 << 40),
        "Pi" => Times(1 << 50),
        "Ei" => Times(1 << 60),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            match power {
                0..=18 => Times(10u128.pow(power.unsigned_abs())),
                -9..=-1 => Nanos(10u128.pow(9 - power.unsigned_abs())),
                _ => return None,
            }
        }
        _ => return None,
    })
}

fn error(message: String, suggestion: Option<String>) -> QuantityError {
    QuantityError { message, suggestion }
}

/// Recognises the units people write by habit and suggests the Kubernetes spelling.
fn unknown_suffix(text: &str, number: &str, suffix: &str) -> QuantityError {
    let binary = match suffix.to_ascii_lowercase().trim_end_matches('b') {
        "k" | "ki" => Some("Ki"),
        "m" | "mi" => Some("Mi"),
        "g" | "gi" => Some("Gi"),
        "t" | "ti" => Some("Ti"),
        "p" | "pi" => Some("Pi"),
        _ => None,
    };
    match binary {
        Some(unit) if !number.is_empty() => error(
            format!("`{text}` is not a Kubernetes quantity: `{suffix}` is not a unit Kubernetes knows"),
            Some(format!("{number}{unit}")),
        ),
        _ => error(format!("`{text}` is not a Kubernetes quantity"), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_in_a_small_unit_is_also_given_in_a_large_one() {
        let of = |text: &str| Quantity::parse(text).unwrap().binary_readable();
        assert_eq!(of("1094432Mi"), "1094432Mi (about 1068.8Gi)");
        assert_eq!(of("2573741825"), "2573741825 (about 2.4Gi)");
        assert_eq!(of("500M"), "500000000 (about 476.8Mi)");
        assert_eq!(of("256Gi"), "256Gi");
        assert_eq!(of("1.5Gi"), "1.5Gi");
        assert_eq!(of("768Mi"), "768Mi");
        assert_eq!(of("2Ti"), "2Ti");
        assert_eq!(of("1000"), "1000");
    }

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_every_suffix_family() {
        assert_eq!(q("32Gi"), 32u128 << 30);
        assert_eq!(q("1G"), 1_000_000_000u128);
        assert_eq!(q("1e3"), 1000u128);
        assert_eq!(q("8"), 8u128);
        assert_eq!(q("1.5Gi"), 3u128 << 29);
        assert!(q("500m") < 1u128 && q("500m") > 0u128);
        assert_eq!(q("500m"), q("0.5"));
    }

    #[test]
    fn orders_sizes_across_units() {
        assert!(q("200Gi") > q("199Gi"));
        assert!(q("1Ti") > q("1000Gi"));
        assert!(q("100G") < q("100Gi"));
    }

    #[test]
    fn suggests_the_kubernetes_spelling_of_habitual_units() {
        assert_eq!(Quantity::parse("32GB").unwrap_err().suggestion.as_deref(), Some("32Gi"));
        assert_eq!(Quantity::parse("512mb").unwrap_err().suggestion.as_deref(), Some("512Mi"));
        assert_eq!(Quantity::parse("2gi").unwrap_err().suggestion.as_deref(), Some("2Gi"));
        assert!(Quantity::parse("lots").is_err());
        assert!(Quantity::parse("").is_err());
        assert!(Quantity::parse("1.2.3").is_err());
        assert_eq!(Quantity::parse("-1").unwrap_err().suggestion.as_deref(), Some("1"));
    }

    #[test]
    fn an_exponent_out_of_reach_is_told_as_such() {
        // Kubernetes reads both (100E, and 1n rounded up); neither is a quantity of a box.
        assert_eq!(Quantity::parse("1e20").unwrap_err().message, "`1e20` is too large");
        assert_eq!(Quantity::parse("1e-12").unwrap_err().message, "`1e-12` is smaller than a billionth, the finest Kubernetes keeps");
        assert_eq!(q("2e11"), 200_000_000_000u128);
    }

    #[test]
    fn sums_and_shows_exactly() {
        let total: Quantity = ["4", "500m", "250m"].into_iter().map(q).sum();
        assert_eq!(total.decimal(), "4.75");
        assert_eq!(q("24").decimal(), "24");
        assert_eq!(Quantity::units(16).decimal(), "16");
        assert_eq!((q("1600Gi") + q("1Ti")).binary(), "2624Gi");
        assert_eq!((q("20Ti") + q("1Gi")).binary(), "20481Gi");
        assert_eq!(q("2Ti").binary(), "2Ti");
        assert_eq!(q("1536Mi").binary(), "1.5Gi");
        assert_eq!(q("74240Mi").binary(), "72.5Gi");
        assert_eq!(q("768Mi").binary(), "768Mi");
        assert_eq!((q("1Gi") + q("1Mi")).binary(), "1025Mi", "not exact in thousandths of a Gi");
        assert_eq!(q("1000").binary(), "1000");
        assert_eq!(q("21Ti").excess_over(q("20Ti")).binary(), "1Ti");
        assert!(q("1Gi").excess_over(q("2Gi")).is_zero());
    }

    #[test]
    fn refuses_what_overflows_instead_of_wrapping() {
        assert!(Quantity::parse("99999999999999999999999999999999999999Ei").is_err());
    }
}
