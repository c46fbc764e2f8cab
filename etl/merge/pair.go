package merge

import (
	"fmt"
	"sort"
)

// PairByVenue pairs two hosts' venue journals by the venue their segments name: every
// venue must be in both, once each.
func PairByVenue(in [2][]Input) ([][2]Input, error) {
	by := [2]map[string]Input{{}, {}}
	for i := range in {
		for _, j := range in[i] {
			v, err := JournalVenue(j.Dir)
			if err != nil {
				return nil, err
			}
			if prev, dup := by[i][v]; dup {
				return nil, fmt.Errorf("%s and %s are both journals of venue %s", prev.Dir, j.Dir, v)
			}
			by[i][v] = j
		}
	}
	var venues []string
	for i := range by {
		for v, j := range by[i] {
			if _, ok := by[1-i][v]; !ok {
				return nil, fmt.Errorf("venue %s is in %s but not in the other host's journals", v, j.Dir)
			}
			if i == 0 {
				venues = append(venues, v)
			}
		}
	}
	sort.Strings(venues)
	var out [][2]Input
	for _, v := range venues {
		out = append(out, [2]Input{by[0][v], by[1][v]})
	}
	return out, nil
}
