package app

// Keys lists the configuration keys LoadConfig reads.
func Keys() []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	return names
}
