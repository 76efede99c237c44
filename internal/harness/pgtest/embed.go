package pgtest

import "embed"

//go:embed sql/*.sql
var sqlFS embed.FS
