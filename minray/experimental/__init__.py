"""Ray's `ray.experimental` helpers that minray provides: `tqdm_ray`."""
