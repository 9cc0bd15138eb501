package incident

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
)

// decodeSummary reads a stored incident record's summary fields. encoding/json would validate
// and then walk the whole record, evidence, timeline and commands included, which made listing
// a page cost about 30 µs per record; this walks the record's top level once, skipping the
// values it does not need at memory speed, and decodes only the summary fields (and the
// verdict's kind) with encoding/json.
func decodeSummary(rec []byte) (Summary, error) {
	var s Summary
	// The summary fields' raw values, re-assembled as one small JSON object.
	small := make([]byte, 0, 512)
	small = append(small, '{')
	err := scanObject(rec, func(key, value []byte) error {
		switch {
		case string(key) == "verdict" && len(value) > 0 && value[0] == '{':
			return scanObject(value, func(k, v []byte) error {
				if string(k) == "kind" {
					small = appendMember(small, "verdict_kind", v)
				}
				return nil
			})
		case summaryFields[string(key)]:
			small = appendMember(small, string(key), value)
		}
		return nil
	})
	if err != nil {
		return s, err
	}
	small = append(small, '}')
	return s, json.Unmarshal(small, &s)
}

// summaryFields are Summary's JSON names that are also the stored record's.
var summaryFields = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeFor[Summary]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "verdict_kind" {
			m[name] = true
		}
	}
	return m
}()

func appendMember(b []byte, key string, value []byte) []byte {
	if len(b) > 1 {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return append(b, value...)
}

var errBadRecord = errors.New("malformed JSON record")

// scanObject calls fn with each key (raw, without quotes; our keys need no unescaping) and raw
// value of the JSON object in data's top level.
func scanObject(data []byte, fn func(key, value []byte) error) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errBadRecord
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return errBadRecord
		}
		end := skipString(data, i)
		if end < 0 {
			return errBadRecord
		}
		key := data[i+1 : end-1]
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return errBadRecord
		}
		i = skipSpace(data, i+1)
		end = skipValue(data, i)
		if end < 0 {
			return errBadRecord
		}
		if err := fn(key, data[i:end]); err != nil {
			return err
		}
		i = skipSpace(data, end)
		switch {
		case i >= len(data):
			return errBadRecord
		case data[i] == '}':
			return nil
		case data[i] == ',':
			i = skipSpace(data, i+1)
		default:
			return errBadRecord
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\t' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at data[i] ('"'), or -1.
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at data[i], or -1.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				if j = skipString(data, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(data) && !strings.ContainsRune(",}] \t\r\n", rune(data[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}
