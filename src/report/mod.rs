//! The compte-rendu: the record of a téléexpertise, as text and as PDF.
