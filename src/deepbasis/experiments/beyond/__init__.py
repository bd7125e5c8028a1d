"""deepbasis' own studies beyond the five papers: same contract (spec, run, report, claims), with
claims that state what the library promises — e.g. that its second-order training reaches
digits the usual PINN recipes do not — judged the same way as the papers' claims."""
