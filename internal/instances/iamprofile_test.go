package instances

import (
	"context"
	"testing"
)

func TestIAMProfileAssociation(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	ctx := context.Background()
	p := IAMProfile{ARN: "arn:aws:iam::" + acct + ":instance-profile/app", ID: "AIPAEXAMPLEEXAMPLE012"}
	id := e.run(t, RunInput{IAMProfile: &p})[0].ID
	e.waitState(t, id, StateRunning)
	const vpc = "vpc-0aaaaaaaaaaaaaaaa"

	md, ok := e.svc.Lookup(ctx, vpc, mustIP(t, e, id))
	if !ok || md.IAMInstanceProfileARN != p.ARN || md.IAMInstanceProfileID != p.ID || md.VPCID != vpc ||
		!associationIDRe.MatchString(md.IAMAssociationID) || len(md.IAMAssociationID) != len("iip-assoc-")+17 {
		t.Fatalf("metadata %+v", md)
	}
	first := md.IAMAssociationID

	_, err := e.svc.AssociateIAMProfile(ctx, acct, id, p)
	wantCode(t, err, "IncorrectState")
	rep, err := e.svc.ReplaceIAMProfile(ctx, acct, first, p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.AssociationID == first || rep.InstanceID != id || rep.State != AssociationAssociated {
		t.Fatalf("replace %+v", rep)
	}
	_, err = e.svc.DisassociateIAMProfile(ctx, acct, first)
	wantCode(t, err, "InvalidAssociationID.NotFound")
	dis, err := e.svc.DisassociateIAMProfile(ctx, acct, rep.AssociationID)
	if err != nil || dis.State != AssociationDisassociating || dis.Profile != p {
		t.Fatalf("disassociate %+v %v", dis, err)
	}
	if md, _ := e.svc.Lookup(ctx, vpc, mustIP(t, e, id)); md.IAMInstanceProfileARN != "" || md.IAMAssociationID != "" {
		t.Fatalf("metadata after disassociation %+v", md)
	}
	if l, err := e.svc.IAMProfileAssociations(ctx, acct); err != nil || len(l) != 0 {
		t.Fatalf("associations %+v %v", l, err)
	}

	// The association survives the controller's own writes (stop/start).
	if _, err := e.svc.AssociateIAMProfile(ctx, acct, id, p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StopInstances(ctx, acct, []string{id}, false); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateStopped)
	if _, err := e.svc.StartInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateRunning)
	if l, err := e.svc.IAMProfileAssociations(ctx, acct); err != nil || len(l) != 1 || l[0].InstanceID != id {
		t.Fatalf("associations after stop/start %+v %v", l, err)
	}

	// Terminated instances take no profile.
	if _, err := e.svc.TerminateInstances(ctx, acct, []string{id}); err != nil {
		t.Fatal(err)
	}
	e.waitState(t, id, StateTerminated)
	_, err = e.svc.AssociateIAMProfile(ctx, acct, id, p)
	wantCode(t, err, "IncorrectInstanceState")
	if l, _ := e.svc.IAMProfileAssociations(ctx, acct); len(l) != 0 {
		t.Fatalf("terminated instance still listed: %+v", l)
	}
}

func TestModifyMetadataOptions(t *testing.T) {
	e := newEnv(t, nil)
	e.start(t)
	ctx := context.Background()
	id := e.run(t, RunInput{})[0].ID
	got, err := e.svc.ModifyMetadataOptions(ctx, acct, id, MetadataOptions{HTTPTokens: "required"})
	if err != nil || got != (MetadataOptions{HTTPTokens: "required", HTTPEndpoint: "enabled", HopLimit: 1}) {
		t.Fatalf("modify tokens: %+v %v", got, err)
	}
	got, err = e.svc.ModifyMetadataOptions(ctx, acct, id, MetadataOptions{HopLimit: 64, HTTPEndpoint: "disabled"})
	if err != nil || got != (MetadataOptions{HTTPTokens: "required", HTTPEndpoint: "disabled", HopLimit: 64}) {
		t.Fatalf("modify hop limit and endpoint: %+v %v", got, err)
	}
	for _, bad := range []MetadataOptions{{HopLimit: 65}, {HopLimit: -1}, {HTTPTokens: "maybe"}, {HTTPEndpoint: "on"}} {
		_, err := e.svc.ModifyMetadataOptions(ctx, acct, id, bad)
		wantCode(t, err, "InvalidParameterValue")
	}
	e.waitState(t, id, StateRunning)
	md, ok := e.svc.Lookup(ctx, "vpc-0aaaaaaaaaaaaaaaa", mustIP(t, e, id))
	if !ok || md.HTTPTokens != "required" || md.HTTPEndpoint != "disabled" || md.HopLimit != 64 {
		t.Fatalf("metadata %+v", md)
	}
}
