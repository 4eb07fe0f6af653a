//! Payload-size limits of the APIs batchgrpc mirrors, checked before anything
//! else looks at a request, so an oversized request fails with its API's own
//! error instead of the transport's.

use crate::error::{Api, CoreError, ErrorKind};

/// Klaviyo: "The maximum allowed payload size is 5MB", taken as 5 MiB of the
/// serialized request.
pub const BULK_EVENTS_MAX_REQUEST_BYTES: u64 = 5 * 1024 * 1024;
/// Klaviyo: "Accepts up to 1,000 events per request".
pub const BULK_EVENTS_MAX_EVENTS: u64 = 1_000;
/// Bloomreach: "the maximum allowed size of a single request is 50 commands".
pub const TRACK_MAX_COMMANDS: u64 = 50;
/// Bloomreach: "Each command size must be less than 800 `KBytes`".
pub const TRACK_MAX_COMMAND_BYTES: u64 = 800 * 1024;
/// Bloomreach: "The value of every event/customer property must be less than
/// 16 `KBytes`".
pub const TRACK_MAX_PROPERTY_VALUE_BYTES: u64 = 16 * 1024;
/// The largest tracking request that can be valid: 50 commands just under the
/// per-command limit, plus framing.
pub const TRACK_MAX_REQUEST_BYTES: u64 = TRACK_MAX_COMMANDS * TRACK_MAX_COMMAND_BYTES + 64 * 1024;

/// Upstream has no fixed text for an oversized command; this one says what to do.
pub const COMMAND_TOO_LARGE: &str = "Command size must be less than 800 KB.";

/// API.md: names (property names, event types, customer id names) are at
/// most 255 characters, as upstream's names are.
pub const MAX_NAME_CHARS: usize = 255;
/// API.md: customer identifier values are at most 1,000 characters.
pub const MAX_CUSTOMER_ID_CHARS: usize = 1_000;
/// API.md: resource ids (a profile's `id`) are at most 64 characters.
pub const MAX_RESOURCE_ID_CHARS: usize = 64;
/// Klaviyo: a metric name "must be less than 128 characters".
pub const MAX_METRIC_NAME_CHARS: usize = 127;
/// API.md: an error never echoes more than 256 characters of what the
/// client sent.
pub const MAX_ECHO_CHARS: usize = 256;

/// Whether `text` has more than `limit` characters (bytes first: a short
/// text is never counted).
#[must_use]
pub fn longer_than(text: &str, limit: usize) -> bool {
    text.len() > limit && text.chars().nth(limit).is_some()
}

/// At most [`MAX_ECHO_CHARS`] characters of a client's `text`, for an error
/// message: a cut text keeps 255 and ends in `…`.
#[must_use]
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    clip_to(text, MAX_ECHO_CHARS)
}

/// At most `limit` characters of `text` (at least 1), the last one `…` when
/// cut.
#[must_use]
pub fn clip_to(text: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    if !longer_than(text, limit) {
        return text.into();
    }
    let end = text
        .char_indices()
        .nth(limit.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i);
    format!("{}…", &text[..end]).into()
}

/// Checks a bulk-create request's serialized size and event count.
///
/// # Errors
/// `PayloadTooLarge` over 5 MiB (checked first: size is what the transport
/// already knows), then `TooManyItems` over 1,000 events.
pub fn check_bulk_request(request_bytes: u64, event_count: u64) -> Result<(), CoreError> {
    if request_bytes > BULK_EVENTS_MAX_REQUEST_BYTES {
        return Err(CoreError::new(ErrorKind::PayloadTooLarge {
            api: Api::BulkEvents,
            size: request_bytes,
            limit: BULK_EVENTS_MAX_REQUEST_BYTES,
        }));
    }
    if event_count > BULK_EVENTS_MAX_EVENTS {
        return Err(CoreError::new(ErrorKind::TooManyItems {
            api: Api::BulkEvents,
            count: event_count,
            limit: BULK_EVENTS_MAX_EVENTS,
        }));
    }
    Ok(())
}

/// Checks a tracking batch: the request as a whole, then each command.
///
/// Returns, per command in order, `None` when its size is within the limit or
/// the per-command error text when it is not: an oversized command fails
/// alone, as every per-command problem does upstream.
///
/// # Errors
/// `NoCommands` for an empty batch, `TooManyItems` over 50 commands,
/// `PayloadTooLarge` over [`TRACK_MAX_REQUEST_BYTES`]: each fails the request.
pub fn check_track_batch(
    request_bytes: u64,
    command_bytes: &[u64],
) -> Result<Vec<Option<&'static str>>, CoreError> {
    if command_bytes.is_empty() {
        return Err(CoreError::new(ErrorKind::NoCommands));
    }
    let count = command_bytes.len() as u64;
    if count > TRACK_MAX_COMMANDS {
        return Err(CoreError::new(ErrorKind::TooManyItems {
            api: Api::Tracking,
            count,
            limit: TRACK_MAX_COMMANDS,
        }));
    }
    if request_bytes > TRACK_MAX_REQUEST_BYTES {
        return Err(CoreError::new(ErrorKind::PayloadTooLarge {
            api: Api::Tracking,
            size: request_bytes,
            limit: TRACK_MAX_REQUEST_BYTES,
        }));
    }
    Ok(command_bytes
        .iter()
        .map(|&size| (size >= TRACK_MAX_COMMAND_BYTES).then_some(COMMAND_TOO_LARGE))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_request_at_the_limit_passes() {
        assert_eq!(
            check_bulk_request(BULK_EVENTS_MAX_REQUEST_BYTES, BULK_EVENTS_MAX_EVENTS),
            Ok(())
        );
    }

    #[test]
    fn bulk_request_one_byte_over_is_payload_too_large() {
        let err = check_bulk_request(BULK_EVENTS_MAX_REQUEST_BYTES + 1, 1).unwrap_err();
        assert_eq!(err.reason(), "PAYLOAD_TOO_LARGE");
        assert_eq!(err.field(), "/data");
        assert!(err.to_string().contains("5242881 bytes"), "{err}");
    }

    #[test]
    fn bulk_request_size_is_checked_before_count() {
        let err = check_bulk_request(BULK_EVENTS_MAX_REQUEST_BYTES + 1, 5_000).unwrap_err();
        assert_eq!(err.reason(), "PAYLOAD_TOO_LARGE");
    }

    #[test]
    fn bulk_request_with_1001_events_is_too_many_items() {
        let err = check_bulk_request(1_000, 1_001).unwrap_err();
        assert_eq!(err.reason(), "TOO_MANY_ITEMS");
        assert_eq!(err.field(), "/data/attributes/events-bulk-create/data");
        assert!(err.to_string().contains("1001"), "{err}");
    }

    #[test]
    fn empty_track_batch_says_no_commands() {
        let err = check_track_batch(0, &[]).unwrap_err();
        assert_eq!(err.reason(), "NO_COMMANDS");
        assert_eq!(err.to_string(), "No commands");
        assert_eq!(err.field(), "commands");
    }

    #[test]
    fn track_batch_of_51_commands_is_too_many_items() {
        let err = check_track_batch(51 * 10, &[10; 51]).unwrap_err();
        assert_eq!(err.reason(), "TOO_MANY_ITEMS");
        assert!(err.to_string().contains("51"), "{err}");
    }

    #[test]
    fn track_batch_of_50_commands_passes() {
        assert_eq!(check_track_batch(500, &[10; 50]).unwrap(), vec![None; 50]);
    }

    #[test]
    fn oversized_track_request_fails_whole() {
        let err = check_track_batch(TRACK_MAX_REQUEST_BYTES + 1, &[1; 3]).unwrap_err();
        assert_eq!(err.reason(), "PAYLOAD_TOO_LARGE");
    }

    #[test]
    fn clipping_keeps_256_characters_at_most() {
        let exact = "é".repeat(256);
        assert_eq!(clip(&exact), exact.as_str());
        let long = "é".repeat(257);
        let clipped = clip(&long);
        assert_eq!(clipped.chars().count(), 256);
        assert!(clipped.ends_with("é…"));
        assert!(!longer_than(&"x".repeat(255), 255));
        assert!(longer_than(&"x".repeat(256), 255));
        // Bytes are not characters: 255 two-byte characters are not too long.
        assert!(!longer_than(&"é".repeat(255), 255));
    }

    #[test]
    fn oversized_command_fails_alone() {
        let sizes = [10, TRACK_MAX_COMMAND_BYTES - 1, TRACK_MAX_COMMAND_BYTES, 10];
        assert_eq!(
            check_track_batch(sizes.iter().sum(), &sizes).unwrap(),
            vec![None, None, Some(COMMAND_TOO_LARGE), None]
        );
    }
}
