package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/alecthomas/kingpin/v2"
	"gopkg.in/yaml.v3"
)

// configFile is $XDG_CONFIG_HOME/zmyrtool/config.yml, i.e. $HOME/.config/zmyrtool/config.yml.
func configFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "zmyrtool", "config.yml")
}

// bindConfigFile makes the config file's keys the defaults of the flags they name, global ones
// and those of the command args select, as amtool does. A missing file is no error; an
// unreadable one, bad YAML or an unknown key is.
func bindConfigFile(app *kingpin.Application, args []string) error {
	path := configFile()
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var values map[string]string
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// The selected command's own flags (--by, …) may be set too.
	pc, _ := app.ParseContext(args)
	for key, value := range values {
		f := app.GetFlag(key)
		if f == nil && pc != nil && pc.SelectedCommand != nil {
			f = pc.SelectedCommand.GetFlag(key)
		}
		if f == nil {
			if pc == nil || pc.SelectedCommand == nil || !commandFlag(app, key) {
				return fmt.Errorf("config file %s: unknown key %q (keys are flag names, e.g. responder.url)", path, key)
			}
			continue // a flag of another command
		}
		f.Default(value)
	}
	return nil
}

// commandFlag reports whether some command has a flag of that name.
func commandFlag(app *kingpin.Application, name string) bool {
	var walk func(cmds []*kingpin.CmdModel) bool
	walk = func(cmds []*kingpin.CmdModel) bool {
		for _, c := range cmds {
			for _, f := range c.Flags {
				if f.Name == name {
					return true
				}
			}
			if walk(c.Commands) {
				return true
			}
		}
		return false
	}
	return walk(app.Model().Commands)
}
