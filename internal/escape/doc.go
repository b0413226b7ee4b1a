// Package escape makes text that processes, files and hosts control safe to
// print in a line-oriented output: nothing it returns can end a line, move
// the cursor, set a terminal title (ESC, OSC) or reorder text (bidi
// controls).
package escape
