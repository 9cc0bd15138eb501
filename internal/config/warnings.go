package config

// Warnings lists what is valid but almost certainly not meant. The daemon starts with such a
// configuration and logs each at WARN; --config.check prints them.
func (c *Config) Warnings() []string {
	var w []string
	if len(c.Clusters) == 0 {
		w = append(w, "no clusters configured: every alert will be journaled as unknown_cluster and nothing will be remediated")
	}
	return w
}
