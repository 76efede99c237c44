package realtime_test

import (
	"context"
	"log"
	"time"

	"go.uber.org/zap"

	"github.com/meshhook/meshhook-alerts/realtime"
)

// The daemon's wiring: run the client, re-sync on Ready and Gap, handle
// changes idempotently.
func ExampleClient() {
	client, err := realtime.New(realtime.Config{
		URL:    "https://abcdefghijklmnop.supabase.co",
		APIKey: "service-role-jwt",
		Logger: zap.NewNop(),
	}, realtime.ChannelSpec{
		Name:     "workflow-runs",
		Bindings: []realtime.Binding{{Event: "*", Schema: "public", Table: "workflow_runs"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx) }()
	for ev := range client.Events() { // closed when Run returns
		switch ev := ev.(type) {
		case realtime.Ready, realtime.Gap:
			_ = ev // catch up from the database
		case *realtime.Change:
			if ev.Incomplete {
				_ = ev.Record["id"] // re-read the row by primary key
			}
		}
	}
	if err := <-done; err != nil {
		log.Fatal(err)
	}
}
