//! What the tracking targets check of every prepared command.

use batchgrpc_core::track::Prepared;

/// Errors name their field and say what is wrong in a bounded text: a name
/// is echoed clipped to 256 characters (twice at most per message).
pub fn check(commands: &[Prepared]) {
    for command in commands {
        for problem in &command.errors {
            assert!(problem.field.chars().count() <= 300, "{}", problem.field);
            assert!(
                problem.message.chars().count() <= 700,
                "{}",
                problem.message
            );
        }
        if command.errors.is_empty() {
            assert!(is_object_text(&command.properties));
        }
    }
}

/// The properties text is a JSON object.
fn is_object_text(text: &str) -> bool {
    text.starts_with('{') && text.ends_with('}')
}
