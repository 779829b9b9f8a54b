// dashcheck: strict validation of Grafana dashboard JSON files against Grafana's own schema.
//
// Each file is decoded with the grafana-foundation-sdk's Dashboard.UnmarshalJSONStrict (after
// registering the default panel and query plugins), which rejects unknown fields and wrong types
// anywhere in the model, panels' options and fieldConfig included. It also requires what the
// generic schema allows to be empty: a description on every panel. Usage: dashcheck FILE...
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func check(path string) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var d dashboard.Dashboard
	// The SDK returns its error list as a typed value: an empty cog.BuildErrors is no error.
	if err := d.UnmarshalJSONStrict(raw); err != nil {
		if errs, ok := err.(cog.BuildErrors); !ok || len(errs) > 0 {
			return []string{fmt.Sprintf("%s: %v", path, err)}
		}
	}
	// The description rule is read from the JSON itself (the schema allows it to be empty).
	var generic struct {
		Panels []struct {
			Type        string `json:"type"`
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	var problems []string
	for _, p := range generic.Panels {
		if p.Type != "row" && p.Description == "" {
			problems = append(problems, fmt.Sprintf("%s: panel %q has no description", path, p.Title))
		}
	}
	return problems
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dashcheck FILE...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	failed := 0
	for _, path := range os.Args[1:] {
		for _, problem := range check(path) {
			fmt.Println(problem)
			failed++
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
	fmt.Printf("%d dashboards pass Grafana's strict schema\n", len(os.Args)-1)
}
