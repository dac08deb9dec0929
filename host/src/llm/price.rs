//! What model calls cost: the operator's price table (`[prices."MODEL"]`,
//! US dollars per million tokens) applied to each call's usage, so a
//! session can show an estimate. Providers count cached input differently:
//! Anthropic's `input_tokens` leave out cache reads and writes, OpenAI's
//! `prompt_tokens` include the cached ones, which are billed at the cache
//! price instead of on top.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::plugins::bindings::current::llm::Usage;

/// One model's prices, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cached input read; default: the input price.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Input written to the cache (Anthropic); default: the input price.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// How a provider counts input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCounting {
    /// Input tokens exclude cache reads and writes (Anthropic).
    Separate,
    /// Input tokens include the cached ones (OpenAI).
    IncludesCached,
}

/// The prices in force: list prices this release knows, then the
/// operator's table over them.
#[derive(Debug, Clone, Default)]
pub struct Prices(BTreeMap<String, Price>);

/// List prices at the time of this release; an operator's `[prices]`
/// entry for the same model wins.
const BUILT_IN: &[(&str, Price)] = &[(
    "claude-sonnet-4-5",
    Price {
        input: 3.0,
        output: 15.0,
        cache_read: Some(0.3),
        cache_write: Some(3.75),
    },
)];

impl Prices {
    pub fn new(operator: &BTreeMap<String, Price>) -> Self {
        let mut table: BTreeMap<String, Price> = BUILT_IN
            .iter()
            .map(|(model, price)| (model.to_string(), *price))
            .collect();
        table.extend(operator.iter().map(|(m, p)| (m.clone(), *p)));
        Self(table)
    }

    /// The estimated cost of one call in millionths of a dollar, or `None`
    /// if the model has no price.
    pub fn cost_micros(&self, model: &str, counting: InputCounting, usage: &Usage) -> Option<i64> {
        let price = self.0.get(model)?;
        let tokens = |n: u32| f64::from(n);
        let (uncached, writes) = match counting {
            InputCounting::Separate => {
                (tokens(usage.input_tokens), tokens(usage.cache_write_tokens))
            }
            InputCounting::IncludesCached => (
                tokens(usage.input_tokens.saturating_sub(usage.cache_read_tokens)),
                0.0,
            ),
        };
        // Dollars per million tokens times tokens is micro-dollars.
        let micros = uncached * price.input
            + tokens(usage.output_tokens) * price.output
            + tokens(usage.cache_read_tokens) * price.cache_read.unwrap_or(price.input)
            + writes * price.cache_write.unwrap_or(price.input);
        Some(micros.round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u32, output: u32, read: u32, write: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_tokens: read,
            cache_write_tokens: write,
        }
    }

    #[test]
    fn cached_input_is_priced_once_whichever_way_the_provider_counts_it() {
        let prices = Prices::new(&BTreeMap::from([(
            "gpt-x".to_string(),
            Price {
                input: 2.0,
                output: 8.0,
                cache_read: Some(0.5),
                cache_write: None,
            },
        )]));
        // Anthropic: 1,000 fresh + 10,000 read + 2,000 written, 500 out.
        let claude = prices.cost_micros(
            "claude-sonnet-4-5",
            InputCounting::Separate,
            &usage(1_000, 500, 10_000, 2_000),
        );
        assert_eq!(claude, Some(3_000 + 7_500 + 3_000 + 7_500));
        // OpenAI: 11,000 prompt tokens of which 10,000 cached, 500 out.
        let gpt = prices.cost_micros(
            "gpt-x",
            InputCounting::IncludesCached,
            &usage(11_000, 500, 10_000, 0),
        );
        assert_eq!(gpt, Some(2_000 + 4_000 + 5_000));
        assert_eq!(
            prices.cost_micros("unknown", InputCounting::Separate, &usage(1, 1, 0, 0)),
            None
        );
    }

    #[test]
    fn the_operators_table_wins_over_list_prices() {
        let prices = Prices::new(&BTreeMap::from([(
            "claude-sonnet-4-5".to_string(),
            Price {
                input: 1.0,
                output: 1.0,
                cache_read: None,
                cache_write: None,
            },
        )]));
        let cost = prices.cost_micros(
            "claude-sonnet-4-5",
            InputCounting::Separate,
            &usage(1_000_000, 0, 0, 0),
        );
        assert_eq!(cost, Some(1_000_000));
    }
}
