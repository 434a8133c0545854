// tlogcheck checks auditbird's Merkle proofs and signed checkpoints with Go's
// golang.org/x/mod/sumdb/tlog and sumdb/note: implementations nobody on auditbird wrote.
//
// Input (stdin, JSON): the leaves' data, proofs and a signed note; output (stdout, JSON): what
// Go computed and whether each proof and the note verified. Built offline in GOPATH mode
// against Debian's golang-golang-x-mod-dev (/usr/share/gocode).
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusion struct {
	Index int64    `json:"index"`
	Size  int64    `json:"size"`
	Leaf  []byte   `json:"leaf_hash"`
	Path  [][]byte `json:"path"`
	Root  []byte   `json:"root"`
}

type consistency struct {
	Old     int64    `json:"old"`
	New     int64    `json:"new"`
	Path    [][]byte `json:"path"`
	OldRoot []byte   `json:"old_root"`
	NewRoot []byte   `json:"new_root"`
}

type input struct {
	Leaves      [][]byte      `json:"leaves"`
	Inclusion   []inclusion   `json:"inclusion"`
	Consistency []consistency `json:"consistency"`
	Note        string        `json:"note"`
	VerifierKey string        `json:"verifier_key"`
}

type output struct {
	Roots       [][]byte   `json:"roots"`        // Go's tree hash for every size 1..len(leaves)
	Inclusion   []string   `json:"inclusion"`    // "" when the proof verified, else Go's error
	Consistency []string   `json:"consistency"`  // idem
	GoRecord    [][][]byte `json:"go_inclusion"` // Go's own proof for each inclusion query
	GoTree      [][][]byte `json:"go_consistency"`
	NoteText    string     `json:"note_text"`
	NoteError   string     `json:"note_error"`
}

func hash(b []byte) (h tlog.Hash) {
	copy(h[:], b)
	return h
}

func hashes(bs [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(bs))
	for i, b := range bs {
		out[i] = hash(b)
	}
	return out
}

func raw(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = append([]byte(nil), hs[i][:]...)
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var stored []tlog.Hash
	reader := tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			out[i] = stored[x]
		}
		return out, nil
	})
	var out output
	for n, data := range in.Leaves {
		more, err := tlog.StoredHashes(int64(n), data, reader)
		if err != nil {
			panic(err)
		}
		stored = append(stored, more...)
		root, err := tlog.TreeHash(int64(n+1), reader)
		if err != nil {
			panic(err)
		}
		out.Roots = append(out.Roots, append([]byte(nil), root[:]...))
	}
	for _, p := range in.Inclusion {
		out.Inclusion = append(out.Inclusion, errText(tlog.CheckRecord(hashes(p.Path), p.Size, hash(p.Root), p.Index, hash(p.Leaf))))
		var mine [][]byte
		if int(p.Size) <= len(in.Leaves) {
			proof, err := tlog.ProveRecord(p.Size, p.Index, reader)
			if err == nil {
				mine = raw(proof)
			}
		}
		out.GoRecord = append(out.GoRecord, mine)
	}
	for _, p := range in.Consistency {
		out.Consistency = append(out.Consistency, errText(tlog.CheckTree(hashes(p.Path), p.New, hash(p.NewRoot), p.Old, hash(p.OldRoot))))
		var mine [][]byte
		if int(p.New) <= len(in.Leaves) {
			proof, err := tlog.ProveTree(p.New, p.Old, reader)
			if err == nil {
				mine = raw(proof)
			}
		}
		out.GoTree = append(out.GoTree, mine)
	}
	if in.Note != "" {
		verifier, err := note.NewVerifier(in.VerifierKey)
		if err != nil {
			out.NoteError = "verifier key: " + err.Error()
		} else {
			n, err := note.Open([]byte(in.Note), note.VerifierList(verifier))
			if err != nil {
				out.NoteError = err.Error()
			} else {
				out.NoteText = n.Text
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		panic(err)
	}
}
