"""The Klaviyo mirror: bulk create events, profiles and the event log read-back."""
