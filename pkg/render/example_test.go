package render_test

import (
	"context"
	"fmt"
	"os"

	"github.com/fleetsync/fleetsync/pkg/fleet"
	"github.com/fleetsync/fleetsync/pkg/render"
)

func ExampleRenderer_Render() {
	ctx := context.Background()
	repo, err := fleet.Load(ctx, os.DirFS("testdata/golden/scale/repo"))
	if err != nil {
		fmt.Println(err)
		return
	}
	res := render.New(render.Options{}).Render(ctx, repo, render.Selection{Clusters: []string{"promo"}, Apps: []string{"api"}})
	if err := res.Err(); err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range res.Clusters {
		for _, a := range c.Apps {
			for _, o := range a.Objects {
				fmt.Printf("%s/%s: %s %s/%s\n", c.Cluster, a.App, o.GetKind(), o.GetNamespace(), o.GetName())
			}
		}
	}
	// Output:
	// promo/api: Namespace /api
	// promo/api: Deployment api/api
	// promo/api: HorizontalPodAutoscaler api/api
	// promo/api: MachineDeployment capi-system/promo-workers
}
