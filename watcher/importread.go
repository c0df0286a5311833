package watcher

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"sigs.k8s.io/yaml"
)

// emitFunc receives one object of the input as JSON, and where it was
// found ("runs.json: item 12"), for the report.
type emitFunc func(obj []byte, where string) error

// readObjects streams the objects of kubectl output to emit, one at a time,
// so that memory is bounded by the largest object, not by the input:
// JSON (one object, a List, a bare array, or several of those one after
// another as in NDJSON) or YAML (documents separated by ---, each a single
// object or a List). A part that cannot be read as an object is passed to
// skip with the reason; a broken JSON stream ends the reading with an error,
// since nothing after it can be trusted to be where it seems.
func readObjects(in io.Reader, source string, emit emitFunc, skip func(string)) error {
	br := bufio.NewReaderSize(in, 256<<10)
	first, err := firstByte(br)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	if first == '{' || first == '[' {
		return readJSON(br, source, emit, skip)
	}
	return readYAML(br, source, emit, skip)
}

// firstByte peeks at the first byte that is not white space, past a
// UTF-8 byte order mark.
func firstByte(br *bufio.Reader) (byte, error) {
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte{0xEF, 0xBB, 0xBF}) {
		br.Discard(3)
	}
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\n' && b != '\r' {
			return b, br.UnreadByte()
		}
	}
}

// readJSON reads top-level JSON values one after another. The items of an
// array, or of an object's "items" array (a kubectl List: its "kind" comes
// after its items, so any object with an items array is taken as a List;
// no run has one), are decoded one at a time.
func readJSON(r io.Reader, source string, emit emitFunc, skip func(string)) error {
	dec := json.NewDecoder(r)
	for value := 1; ; value++ {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: reading JSON value %d: %w", source, value, err)
		}
		where := source
		if value > 1 {
			where = fmt.Sprintf("%s: value %d", source, value)
		}
		switch tok {
		case json.Delim('['):
			if err := readJSONItems(dec, where, emit); err != nil {
				return err
			}
		case json.Delim('{'):
			if err := readJSONObject(dec, where, emit); err != nil {
				return err
			}
		default:
			skip(fmt.Sprintf("%s: %v is not an object or a list of objects", where, tok))
		}
	}
}

// readJSONItems decodes the items of an array whose '[' was read, up to
// and including its ']'.
func readJSONItems(dec *json.Decoder, where string, emit emitFunc) error {
	for i := 1; dec.More(); i++ {
		var item json.RawMessage
		if err := dec.Decode(&item); err != nil {
			return fmt.Errorf("%s: reading item %d: %w", where, i, err)
		}
		itemWhere := fmt.Sprintf("%s: item %d", where, i)
		for j, obj := range flatten(item) {
			w := itemWhere
			if j > 0 {
				w = fmt.Sprintf("%s.%d", itemWhere, j+1)
			}
			if err := emit(obj, w); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// readJSONObject reads an object whose '{' was read: a List's items are
// emitted one by one as they are decoded; any other object is put back
// together from its fields and emitted whole.
func readJSONObject(dec *json.Decoder, where string, emit emitFunc) error {
	var whole bytes.Buffer
	whole.WriteByte('{')
	isList := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		key, _ := tok.(string)
		if key == "items" {
			next, err := dec.Token()
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if next != json.Delim('[') {
				return fmt.Errorf("%s: \"items\" is %v, not a list: give kubectl output (-o json) or an array of objects", where, next)
			}
			isList = true
			if err := readJSONItems(dec, where, emit); err != nil {
				return err
			}
			continue
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return fmt.Errorf("%s: field %q: %w", where, key, err)
		}
		if !isList {
			if whole.Len() > 1 {
				whole.WriteByte(',')
			}
			k, _ := json.Marshal(key)
			whole.Write(k)
			whole.WriteByte(':')
			whole.Write(value)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return fmt.Errorf("%s: %w", where, err)
	}
	if isList {
		return nil // its other fields (kind, metadata) describe the List only
	}
	whole.WriteByte('}')
	return emit(whole.Bytes(), where)
}

// readYAML reads YAML documents line by line. The items of a List document
// (a top-level "items:" block sequence, as kubectl -o yaml writes it) are
// converted and emitted one at a time; any other document is converted
// whole at its end.
func readYAML(r *bufio.Reader, source string, emit emitFunc, skip func(string)) error {
	y := yamlSplitter{source: source, emit: emit, skip: skip, doc: 1}
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if perr := y.line(line); perr != nil {
				return perr
			}
		}
		if err == io.EOF {
			return y.endDocument()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
	}
}

// yamlSplitter cuts a YAML stream into objects, keeping only the current
// item (or the current non-List document) in memory.
type yamlSplitter struct {
	source string
	emit   emitFunc
	skip   func(string)

	doc       int          // the current document, from 1
	head      bytes.Buffer // the document's lines outside its items
	inItems   bool         // reading the items of a List
	isList    bool         // the document had an items sequence
	seqIndent int          // the indentation of the items' "- " (-1: not seen yet)
	item      bytes.Buffer // the current item, de-indented
	itemNo    int
}

func (y *yamlSplitter) where() string {
	if y.itemNo > 0 {
		return fmt.Sprintf("%s: YAML document %d, item %d", y.source, y.doc, y.itemNo)
	}
	return fmt.Sprintf("%s: YAML document %d", y.source, y.doc)
}

func (y *yamlSplitter) line(raw []byte) error {
	text := strings.TrimRight(string(raw), "\r\n")
	trimmed := strings.TrimRight(text, " \t")
	if trimmed == "---" || strings.HasPrefix(trimmed, "--- ") || trimmed == "..." {
		if err := y.endDocument(); err != nil {
			return err
		}
		y.doc++
		if rest := strings.TrimSpace(strings.TrimPrefix(trimmed, "---")); rest != "" && trimmed != "..." {
			y.head.WriteString(rest + "\n") // "--- {json}" on one line
		}
		return nil
	}
	if y.inItems {
		indent := len(text) - len(strings.TrimLeft(text, " "))
		rest := text[indent:]
		switch {
		case trimmed == "":
			if y.item.Len() > 0 {
				y.item.WriteByte('\n') // a blank line inside a block scalar
			}
			return nil
		case y.seqIndent < 0 && (rest == "-" || strings.HasPrefix(rest, "- ")):
			y.seqIndent = indent
			fallthrough
		case indent == y.seqIndent && (rest == "-" || strings.HasPrefix(rest, "- ")):
			if err := y.endItem(); err != nil {
				return err
			}
			y.itemNo++
			y.item.WriteString(strings.TrimPrefix(strings.TrimPrefix(rest, "-"), " "))
			y.item.WriteByte('\n')
			return nil
		case y.seqIndent >= 0 && indent > y.seqIndent:
			y.item.WriteString(text[min(indent, y.seqIndent+2):])
			y.item.WriteByte('\n')
			return nil
		case strings.HasPrefix(rest, "#"):
			return nil
		}
		// Back at the top level: the items are over.
		if err := y.endItem(); err != nil {
			return err
		}
		y.inItems = false
	}
	switch {
	case trimmed == "items:":
		y.inItems, y.isList, y.seqIndent, y.itemNo = true, true, -1, 0
		return nil
	case trimmed == "items: []":
		y.isList = true
		return nil
	}
	y.head.WriteString(text)
	y.head.WriteByte('\n')
	return nil
}

// endItem converts and emits the item read so far, if any.
func (y *yamlSplitter) endItem() error {
	if y.item.Len() == 0 {
		return nil
	}
	defer y.item.Reset()
	return y.emitYAML(y.item.Bytes())
}

// endDocument finishes the current document: its last item, or the whole
// document when it was not a List.
func (y *yamlSplitter) endDocument() error {
	defer func() {
		y.head.Reset()
		y.inItems, y.isList, y.itemNo = false, false, 0
	}()
	if err := y.endItem(); err != nil {
		return err
	}
	if y.isList || len(bytes.TrimSpace(y.head.Bytes())) == 0 {
		return nil
	}
	return y.emitYAML(y.head.Bytes())
}

// emitYAML converts one YAML object to JSON and emits it (each item of it,
// when it is itself a List).
func (y *yamlSplitter) emitYAML(doc []byte) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		y.skip(fmt.Sprintf("%s: %v", y.where(), err))
		return nil
	}
	if t := bytes.TrimSpace(j); string(t) == "null" || len(t) == 0 {
		return nil // a document of comments only
	}
	for i, obj := range flatten(j) {
		w := y.where()
		if i > 0 {
			w = fmt.Sprintf("%s.%d", w, i+1)
		}
		if err := y.emit(obj, w); err != nil {
			return err
		}
	}
	return nil
}

// flatten expands Lists (kind List, TaskRunList...) and JSON arrays held
// in memory: an item that is itself a List.
func flatten(doc []byte) [][]byte {
	doc = bytes.TrimSpace(doc)
	if len(doc) > 0 && doc[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(doc, &items) == nil {
			var out [][]byte
			for _, it := range items {
				out = append(out, flatten(it)...)
			}
			return out
		}
	}
	if !bytes.Contains(doc, []byte(`"items"`)) {
		return [][]byte{doc} // the common case, a run: no second parse
	}
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if json.Unmarshal(doc, &list) == nil && strings.HasSuffix(list.Kind, "List") {
		var out [][]byte
		for _, it := range list.Items {
			out = append(out, flatten(it)...)
		}
		return out
	}
	return [][]byte{doc}
}

func describe(obj []byte) string {
	var m struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"metadata"`
	}
	if json.Unmarshal(obj, &m) != nil || m.Kind == "" {
		return "unreadable"
	}
	if m.Metadata.Namespace != "" {
		return m.Kind + " " + m.Metadata.Namespace + "/" + m.Metadata.Name
	}
	return m.Kind + " " + m.Metadata.Name
}
