package nodeport

import "context"

// Reconciling the port table with a controller's complete desired set, as
// the C++ library's plan and sync do (loader/table/port_table.cpp, loader/table/sync.cpp).

// SyncPlan is what makes the table equal to a desired set, applied in this
// order: adds and overwrites first, removals last.
type SyncPlan struct {
	Add       []Mapping // not mapped now
	Update    []Mapping // mapped now, to another backend or owner
	Remove    []Mapping // mapped now, not wanted (as they are now)
	Unchanged int
}

// SyncResult is what Sync did: the plan's counts and the sockets ended.
type SyncResult struct {
	Added, Updated, Removed, Unchanged int
	Ended                              EndedSockets
}

// planSync compares by (node port, family): a port's IPv4 and IPv6 entries
// are added, updated and removed each on its own.
func planSync(current []storedEntry, want []entry) (add, update, remove []entry, unchanged int) {
	now := make(map[entryKey]entry, len(current))
	for _, e := range current {
		now[e.key()] = e.entry
	}
	wanted := make(map[entryKey]bool, len(want))
	for _, e := range want {
		wanted[e.key()] = true
		old, ok := now[e.key()]
		switch {
		case !ok:
			add = append(add, e)
		case old != e:
			update = append(update, e)
		default:
			unchanged++
		}
	}
	for _, e := range current {
		if !wanted[e.key()] {
			remove = append(remove, e.entry)
		}
	}
	return
}

func mappings(es []entry) []Mapping {
	out := make([]Mapping, 0, len(es))
	for _, e := range es {
		out = append(out, e.mapping())
	}
	return out
}

// Plan returns what Sync(want) would do now.
func (t *Table) Plan(want []Mapping) (SyncPlan, error) {
	desired, err := checkDesired(want)
	if err != nil {
		return SyncPlan{}, err.(inputError).to("sync")
	}
	var plan SyncPlan
	err = t.read("sync", func() error {
		current, err := t.entries()
		if err != nil {
			return mapError("sync", "read ports map", err)
		}
		add, update, remove, unchanged := planSync(current, desired)
		plan = SyncPlan{mappings(add), mappings(update), mappings(remove), unchanged}
		return nil
	})
	return plan, err
}

// Sync makes the table equal to want, both families (each node port at most
// once per family, every entry valid, else ErrBadInput and nothing changed;
// a port's IPv4 and IPv6 backends are two entries): adds and overwrites
// first, removals last, all under the write lock, so a port that stays
// mapped is never missing. A failure part-way leaves the table between the
// two states; running Sync again converges.
func (t *Table) Sync(ctx context.Context, want []Mapping) (SyncResult, error) {
	desired, err := checkDesired(want)
	if err != nil {
		return SyncResult{}, err.(inputError).to("sync")
	}
	var result SyncResult
	err = t.write(ctx, "sync", func() error {
		current, err := t.entries()
		if err != nil {
			return mapError("sync", "read ports map", err)
		}
		add, update, remove, unchanged := planSync(current, desired)
		result = SyncResult{Added: len(add), Updated: len(update), Removed: len(remove), Unchanged: unchanged}
		before := make(map[entryKey]entry, len(current))
		for _, e := range current {
			before[e.key()] = e.entry
		}
		// Recorded before the first change: a sync killed anywhere after it
		// leaves the walk to the next writer.
		var replaced []entry
		for _, e := range update {
			if old := before[e.key()]; old.backend != e.backend {
				replaced = append(replaced, old)
			}
		}
		replaced = append(replaced, remove...)
		targets := udpOnly(targetsOf(replaced))
		notRecorded := t.ender.record(targets)
		t.rememberReplaced(replaced)
		removeExtras := func() error {
			for _, e := range remove {
				if err := t.deleteEntry(e.key()); err != nil {
					return mapError("sync", "delete "+e.key().String(), err)
				}
				t.forgetCounters(e.key())
			}
			return nil
		}
		// Removals last, so a port that stays mapped is never missing; but
		// first when the table cannot hold what is there and what comes
		// together (both families share its maxPorts entries): adds that
		// fail for room would fail again at every retry.
		removalsFirst := len(current)+len(add) > maxPorts
		if removalsFirst {
			if err := removeExtras(); err != nil {
				return err
			}
		}
		for _, group := range [][]entry{add, update} {
			for _, e := range group {
				if err := t.put(e); err != nil {
					return mapError("sync", "set "+e.key().String(), err)
				}
				if old, ok := before[e.key()]; !ok || old.owner != e.owner {
					t.forgetCounters(e.key())
				}
			}
		}
		if !removalsFirst {
			if err := removeExtras(); err != nil {
				return err
			}
		}
		result.Ended = t.endSockets(targets, notRecorded)
		return nil
	})
	return result, err
}
