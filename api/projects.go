package api

import (
	"net/http"
	"sort"

	"github.com/meshhook/meshhook-alerts/supabase"
)

// Bounds of GET /api/projects: the names are for display, so a caller with
// more projects or workflow versions gets the first ones and truncated.
const (
	maxProjects         = 1000
	maxWorkflowVersions = 10000
)

type projectsResponse struct {
	// Available is false when the database has no MeshHook projects table
	// (the daemon watches another table): rules then name no projects.
	Available bool          `json:"available"`
	Projects  []projectView `json:"projects"`
	Truncated bool          `json:"truncated"`
}

type projectView struct {
	ID        string             `json:"id"`
	Name      string             `json:"name"`
	Workflows []workflowNameView `json:"workflows"`
}

type workflowNameView struct {
	Slug string `json:"slug"`
	// Name is the name of the workflow's newest version.
	Name string `json:"name"`
}

// listProjects answers GET /api/projects: the MeshHook projects the caller
// may see, with their names and their workflows' slugs and names, so that
// the UI can show names where the rules and alerts hold ids and slugs. The
// operator sees every project, a user their own (row-level security).
func (a *API) listProjects(w http.ResponseWriter, r *http.Request, p *principal) error {
	ctx := p.ctx(r.Context())
	resp := projectsResponse{Available: true, Projects: []projectView{}}
	projects, more, err := a.opts.Store.ProjectNames(ctx, maxProjects)
	switch {
	case supabase.IsNotFound(err):
		resp.Available = false
		writeJSON(w, http.StatusOK, resp)
		return nil
	case err != nil:
		return err
	}
	resp.Truncated = more
	wfs, more, err := a.opts.Store.WorkflowNames(ctx, maxWorkflowVersions)
	if err != nil && !supabase.IsNotFound(err) {
		return err
	}
	resp.Truncated = resp.Truncated || more
	// The newest version's name, per project and slug.
	type key struct{ project, slug string }
	newest := map[key]supabase.WorkflowName{}
	for _, wf := range wfs {
		k := key{wf.ProjectID, wf.Slug}
		if cur, ok := newest[k]; !ok || wf.Version > cur.Version {
			newest[k] = wf
		}
	}
	byProject := map[string][]workflowNameView{}
	for k, wf := range newest {
		byProject[k.project] = append(byProject[k.project], workflowNameView{Slug: k.slug, Name: wf.Name})
	}
	for _, pr := range projects {
		v := projectView{ID: pr.ID, Name: pr.Name, Workflows: byProject[pr.ID]}
		if v.Workflows == nil {
			v.Workflows = []workflowNameView{}
		}
		sort.Slice(v.Workflows, func(i, j int) bool { return v.Workflows[i].Slug < v.Workflows[j].Slug })
		resp.Projects = append(resp.Projects, v)
	}
	sort.SliceStable(resp.Projects, func(i, j int) bool { return resp.Projects[i].Name < resp.Projects[j].Name })
	writeJSON(w, http.StatusOK, resp)
	return nil
}
