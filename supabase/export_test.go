package supabase

// DecodeAlertsForTest exposes decodeAlerts to the external tests.
var DecodeAlertsForTest = decodeAlerts
