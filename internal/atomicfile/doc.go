// Package atomicfile owns the one way ulp replaces a file: write a temporary
// file in the same folder, fsync it, rename it over the path and fsync the
// folder, so that a reader (the dynamic loader, a rollout reading its last
// results) sees the old file or the new one, never a part.
package atomicfile
