package main

import (
	"io/fs"

	"github.com/acme/viewersession/web/demo"
)

// demoAssets returns the demo viewer page's files for the -dev web port
// (web/demo: built by `make proto`, committed).
func demoAssets() fs.FS { return demo.Assets() }
