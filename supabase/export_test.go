package supabase

// DecodeAlertsForTest exposes decodeAlerts to the external tests.
var DecodeAlertsForTest = decodeAlerts

// DefaultRunsTable is MeshHook's run table, which the tests' databases
// hold. The daemon names its table from the watch configuration.
var DefaultRunsTable = RunsTable{Schema: "public", Table: "workflow_runs", IDColumn: "id", UpdatedAtColumn: "updated_at"}
