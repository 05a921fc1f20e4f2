"""Stage 8, render: photos in (:mod:`.photos`, :mod:`.presets`), heatmaps, panels and the
gallery out (:mod:`.heatmaps`, :mod:`.gallery`), and ``aeq explain``'s loop over photos
(:mod:`.imaging`)."""
