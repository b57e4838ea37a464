//! Request form templates and the parser of the `Libellé : valeur` form.
