// Package redact prints values that carry secrets without them: one mask
// for every secret, and the fmt hooks that types holding secrets build on.
//
// A type holding a secret masks it in each way it can be printed: String
// for %v and %s, GoString for %#v, a Format method that routes every other
// verb (%d, %x, %q...) through the two, since fmt would otherwise print the
// fields themselves, and MarshalJSON for encoding/json, which zap.Reflect
// and zap.Any of an enclosing struct go through.
package redact

import (
	"fmt"
	"io"
	"strings"
)

// Mask stands for a secret that is set wherever one is printed or logged.
const Mask = "xxxxx"

// Secret returns Mask for s, a secret, or "" when s is empty, so that an
// unset secret still shows as unset.
func Secret(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}

// Format writes to f for verb: %#v as goString formats, any other verb
// applied to what str formats. It is the body of the Format method of a
// type whose String and GoString mask its secrets.
func Format(f fmt.State, verb rune, str, goString func() string) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, goString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), str())
}

// GoSyntax is fmt's %#v of plain, under name: plain is a copy of a struct
// of the type called name, converted to a struct type with the same fields
// and none of its methods, and with its secrets masked. plain must be a
// struct: GoSyntax panics otherwise.
func GoSyntax(name string, plain any) string {
	s := fmt.Sprintf("%#v", plain)
	return name + s[strings.IndexByte(s, '{'):]
}
