package config

import (
	"strconv"
	"strings"
)

// yaml.v3 numbers the lines of parser errors from 0 but those of scanner
// errors from 1 (its parser.fail adds 1 for scanner errors only), so an
// unclosed '{' on line 3 is reported on line 2. These are the parser's
// problems (parserc.go); their line gets the missing 1. For the flow and
// block errors the line is that of the collection left open (unless it
// opened on line 1: then the line where the parser gave up).
var parserProblems = map[string]string{
	"did not find expected <stream-start>":   "",
	"did not find expected <document start>": "",
	"found undefined tag handle":             "",
	"did not find expected node content":     "",
	"did not find expected '-' indicator":    " (a list started here is not indented consistently)",
	"did not find expected key":              " (a mapping started here: check the indentation of its fields)",
	"did not find expected ',' or ']'":       " (a [ list is not closed)",
	"did not find expected ',' or '}'":       " (a { mapping is not closed)",
	"found duplicate %YAML directive":        "",
	"found incompatible YAML document":       "",
	"found duplicate %TAG directive":         "",
}

// syntaxError turns a yaml.v3 syntax error into an *Error on the right line.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, rest[i+2:]
			}
		}
	}
	if hint, parser := parserProblems[msg]; parser {
		line++ // 0-based, and absent when 0
		msg += hint
	}
	return &Error{File: file, Line: line, Msg: "YAML syntax: " + msg}
}
