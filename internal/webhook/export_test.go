package webhook

// Views of a Batch for the tests: what each of its changes holds, in
// payload order.

// Messages returns the usable messages of every change.
func (b Batch) Messages() []Message {
	return collect(b, func(c Change) []Message { return c.Messages })
}

// Skipped returns the skipped messages of every change.
func (b Batch) Skipped() []Skipped { return collect(b, func(c Change) []Skipped { return c.Skipped }) }

// Statuses returns how many receipts the payload holds.
func (b Batch) Statuses() int {
	n := 0
	for _, e := range b.Entries {
		for _, c := range e.Changes {
			n += c.Statuses
		}
	}
	return n
}

// collect appends what of each change of b part picks.
func collect[T any](b Batch, part func(Change) []T) []T {
	var all []T
	for _, e := range b.Entries {
		for _, c := range e.Changes {
			all = append(all, part(c)...)
		}
	}
	return all
}
