//! The price table: dollars per million tokens per model, shipped with vault
//! (`vault-core/prices.toml`, dated) and overridable by the operator with a
//! file of the same shape. Only raw token counts are stored; cost is computed
//! from this table when a report or a budget asks, so a price change applies
//! to past usage too when the operator wants it to.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::usage::Tokens;

/// The table shipped with this build.
const SHIPPED: &str = include_str!("../prices.toml");

/// A file's shape. Unknown fields are refused: a typo (`ouput`) would
/// otherwise price a model's output at zero.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    as_of: Option<String>,
    #[serde(default)]
    models: BTreeMap<String, ModelPrice>,
}

/// One model's prices, US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Fresh input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input read from the prompt cache (default: `input`).
    pub cache_read: Option<f64>,
    /// Input written to the prompt cache (default: `input`).
    pub cache_write: Option<f64>,
}

impl ModelPrice {
    /// What `tokens` cost, in micro-dollars (a token at $P per million costs P micro-dollars).
    pub fn cost_micro_usd(&self, tokens: &Tokens) -> u64 {
        let micro = tokens.input as f64 * self.input
            + tokens.output as f64 * self.output
            + tokens.cache_read as f64 * self.cache_read.unwrap_or(self.input)
            + tokens.cache_write as f64 * self.cache_write.unwrap_or(self.input);
        micro.round().max(0.0) as u64
    }
}

/// Prices by normalised model name.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    as_of: String,
    models: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    /// The table shipped with this build.
    pub fn shipped() -> PriceTable {
        // The shipped file is checked by a test; an error here is a build defect.
        PriceTable::parse(SHIPPED, "the shipped price table").unwrap_or_else(|_| PriceTable {
            as_of: "unknown".into(),
            models: BTreeMap::new(),
        })
    }

    /// The shipped table with the operator's file `text` (named `what` in
    /// errors) laid over it: its models replace or add to the shipped ones,
    /// its `as_of` (if any) dates the result.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for TOML errors, unknown fields, negative or
    /// non-finite prices.
    pub fn with_overrides(text: &str, what: &str) -> Result<PriceTable> {
        let mut table = PriceTable::shipped();
        let over = PriceTable::parse(text, what)?;
        if over.as_of != "unknown" {
            table.as_of = over.as_of;
        }
        table.models.extend(over.models);
        Ok(table)
    }

    /// The table a command uses: the shipped one with the operator's file
    /// laid over it, `flag` (`--prices`, which must exist) or else
    /// `home/prices.toml` when present.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a file that cannot be read or parsed.
    pub fn load(flag: Option<&std::path::Path>, home: &std::path::Path) -> Result<PriceTable> {
        let (path, required) = match flag {
            Some(p) => (p.to_path_buf(), true),
            None => (home.join("prices.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => PriceTable::with_overrides(&text, &path.display().to_string()),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(PriceTable::shipped())
            }
            Err(e) => Err(Error::InvalidInput {
                what: "price table",
                reason: format!("--prices {}: {e}", path.display()),
            }),
        }
    }

    fn parse(text: &str, what: &str) -> Result<PriceTable> {
        let file: PriceFile = toml::from_str(text).map_err(|e| Error::InvalidInput {
            what: "price table",
            reason: format!("{what}: {}", e.message()),
        })?;
        let mut models = BTreeMap::new();
        for (name, price) in file.models {
            let fields = [
                Some(price.input),
                Some(price.output),
                price.cache_read,
                price.cache_write,
            ];
            if fields.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(Error::InvalidInput {
                    what: "price table",
                    reason: format!(
                        "{what}: model {name:?}: prices are dollars per million tokens, 0 or more"
                    ),
                });
            }
            models.insert(normalise_model(&name), price);
        }
        Ok(PriceTable {
            as_of: file.as_of.unwrap_or_else(|| "unknown".into()),
            models,
        })
    }

    /// The table's date.
    pub fn as_of(&self) -> &str {
        &self.as_of
    }

    /// The prices of `model` (any spelling [`normalise_model`] folds).
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(&normalise_model(model))
    }

    /// What `tokens` of `model` cost, in micro-dollars; None for a model the table does not know.
    pub fn cost_micro_usd(&self, model: &str, tokens: &Tokens) -> Option<u64> {
        self.get(model).map(|p| p.cost_micro_usd(tokens))
    }
}

/// Lowercases, drops a provider prefix (`openai/gpt-4o`, OpenRouter's form;
/// `models/gemini-2.5-pro`, Gemini's) and a date suffix (`-2025-04-14`,
/// `-20250514`), so a dated snapshot is priced as its model.
pub fn normalise_model(model: &str) -> String {
    let lower = model.trim().to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYY-MM-DD
    let parts: Vec<&str> = name.rsplitn(4, '-').collect();
    if parts.len() == 4
        && parts[0].len() == 2
        && parts[1].len() == 2
        && parts[2].len() == 4
        && digits(parts[0])
        && digits(parts[1])
        && digits(parts[2])
        && parts[2].starts_with("20")
    {
        return parts[3].to_owned();
    }
    // -YYYYMMDD
    if let Some((base, tail)) = name.rsplit_once('-') {
        if tail.len() == 8 && digits(tail) && tail.starts_with("20") {
            return base.to_owned();
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 16, prices: the shipped table parses, is dated, and prices dated snapshots as their model
    #[test]
    fn the_shipped_table_parses_and_normalises_dated_model_names() {
        let t = PriceTable::parse(SHIPPED, "shipped").unwrap();
        assert_ne!(t.as_of(), "unknown");
        assert!(t.models.len() >= 10);
        for (dated, base) in [
            ("gpt-4.1-2025-04-14", "gpt-4.1"),
            ("claude-sonnet-4-20250514", "claude-sonnet-4"),
            ("anthropic/claude-sonnet-4", "claude-sonnet-4"),
            ("models/gemini-2.5-flash", "gemini-2.5-flash"),
            ("GPT-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("o4-mini", "o4-mini"),
        ] {
            assert_eq!(normalise_model(dated), base, "{dated}");
            assert!(t.get(dated).is_some(), "{dated}");
        }
        // a version number is not a date
        assert_eq!(normalise_model("claude-opus-4-1"), "claude-opus-4-1");
        let tokens = Tokens {
            input: 1_000,
            output: 500,
            cache_read: 2_000,
            cache_write: 0,
        };
        // gpt-4o: 1000 x 2.50 + 500 x 10 + 2000 x 1.25 micro-dollars
        assert_eq!(t.cost_micro_usd("gpt-4o-2024-08-06", &tokens), Some(10_000));
        assert_eq!(t.cost_micro_usd("no-such-model", &tokens), None);
    }

    // issue 16, bad input: an operator's price file with an unknown field is
    // refused with the field named; a good one overrides and adds
    #[test]
    fn an_operator_price_file_overrides_and_unknown_fields_are_refused() {
        let err = PriceTable::with_overrides(
            "[models.\"gpt-4o\"]\ninput = 1.0\nouput = 2.0\n",
            "prices.toml",
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("prices.toml") && text.contains("ouput"),
            "{text}"
        );
        let err = PriceTable::with_overrides("currency = \"EUR\"\n", "p").unwrap_err();
        assert!(err.to_string().contains("currency"), "{err}");
        let err = PriceTable::with_overrides("[models.m]\ninput = -1.0\noutput = 1.0\n", "p")
            .unwrap_err();
        assert!(err.to_string().contains("0 or more"), "{err}");
        let t = PriceTable::with_overrides(
            "as_of = \"2026-12-01\"\n[models.\"gpt-4o-2024-08-06\"]\ninput = 1.0\noutput = 2.0\n\
             [models.\"local-llama\"]\ninput = 0.0\noutput = 0.0\n",
            "p",
        )
        .unwrap();
        assert_eq!(t.as_of(), "2026-12-01");
        assert_eq!(t.get("gpt-4o").unwrap().input, 1.0);
        assert!(t.get("local-llama").is_some());
        assert!(t.get("claude-sonnet-4").is_some(), "the shipped rest stays");
    }
}
