package main

import "io/fs"

// demoAssets returns the demo viewer page's files for the -dev web port, or
// nil when this binary was built without them.
func demoAssets() fs.FS { return nil }
