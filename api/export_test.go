package api

// Renders counts the rules the API rendered against the sample run.
func Renders(a *API) int64 { return a.count.renders.Load() }

// Compiles counts the stored rules the API compiled to check them.
func Compiles(a *API) int64 { return a.count.compiles.Load() }
