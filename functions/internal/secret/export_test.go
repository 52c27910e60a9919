package secret

// Settle waits for the background reads under way, for tests.
func (w *Watched) Settle() { w.refreshes.Wait() }
