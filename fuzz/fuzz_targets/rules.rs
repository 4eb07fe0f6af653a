//! Value checks and timestamp parsing: any text gets an answer, no panic.
#![no_main]

use batchgrpc_core::rules::{is_email, parse_timestamp, ColumnRule, PatternBudget, RuleSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = is_email(text);
    let _ = parse_timestamp(text);
    for value_type in ["INTEGER", "NUMBER", "BOOLEAN", "EMAIL", "TIMESTAMP"] {
        let spec = RuleSpec {
            kind: "FULL_NAME_MATCH".into(),
            name: "c".into(),
            value_type: value_type.into(),
            max_length: 8,
            ..RuleSpec::default()
        };
        let rule =
            ColumnRule::compile(0, &spec, &mut PatternBudget::default()).expect("a valid rule");
        let _ = rule.check("c", text);
    }
});
