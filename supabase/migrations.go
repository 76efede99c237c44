package supabase

import (
	"embed"
	"io/fs"
	"path"
	"sort"
)

// Migrations holds meshhook-alerts' SQL migrations in the Supabase CLI
// layout (migrations/<timestamp>_<name>.sql). Apply them in the order
// MigrationFiles returns, each in its own transaction.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// MigrationFiles returns the paths of the migrations inside Migrations
// (e.g. "migrations/20261128000001_alert_tables.sql"), sorted by name, which
// is their timestamp order.
func MigrationFiles() ([]string, error) {
	names, err := fs.Glob(Migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// Migration is one embedded SQL migration.
type Migration struct {
	Name string // file name, e.g. "20261128000001_alert_tables.sql"
	SQL  string
}

// ReadMigrations returns every embedded migration with its SQL, in the order
// to apply them.
func ReadMigrations() ([]Migration, error) {
	files, err := MigrationFiles()
	if err != nil {
		return nil, err
	}
	out := make([]Migration, 0, len(files))
	for _, f := range files {
		b, err := Migrations.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Name: path.Base(f), SQL: string(b)})
	}
	return out, nil
}
