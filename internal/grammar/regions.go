package grammar

import (
	"fmt"
)

// parseFailover reads secretfetch.io/failover-region over the default
// failover region. The default steps aside for a pod whose own region it
// is: such a pod has no other region to go to.
func (p *parser) parseFailover() {
	v, ok := p.in.Annotations[AnnotationFailoverRegion]
	if !ok {
		if d := p.s.DefaultFailoverRegion; d != p.plan.Region {
			p.plan.FailoverRegion = d
		}
		return
	}
	fp := annotation(AnnotationFailoverRegion)
	switch err := ValidateRegion(v); {
	case v == "":
		p.add(invalid(fp, v, "the region is empty; set the AWS region that holds the secrets' replicas, such as us-west-2, or remove the annotation"))
	case err != nil:
		p.add(invalid(fp, Omit, err.Error()))
	case v == p.plan.Region:
		p.add(invalid(fp, v, fmt.Sprintf("this is the pod's region (%s); name the other region that holds the secrets' replicas", AnnotationRegion)))
	default:
		p.plan.FailoverRegion = v
	}
}

// parseBatch reads secretfetch.io/batch: "true" or "false".
func (p *parser) parseBatch() {
	v, ok := p.in.Annotations[AnnotationBatch]
	if !ok {
		return
	}
	switch v {
	case "true":
		p.plan.Batch = true
	case "false":
	default:
		p.add(invalid(annotation(AnnotationBatch), Omit, `use "true" to fetch up to 20 secrets a call with BatchGetSecretValue, or "false"`))
	}
}
