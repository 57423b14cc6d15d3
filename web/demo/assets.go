// Package demo holds the demo viewer page of `server -dev` (web/demo/src,
// built with esbuild into dist/ by `cd web && node build.mjs`; the built
// files are committed, and make test-web checks they match the sources).
package demo

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Assets returns the page's files: index.html, demo.js and demo.css.
func Assets() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return dist // fs.Sub fails only on an invalid name, and "dist" is valid
	}
	return sub
}
